// A small history router under /ui/: /ui/status, /ui/unseal, /ui/secrets?path=secret/app/ ...
// The server answers index.html for any /ui/ path without a file extension, so a reload or a
// bookmarked page lands on the same page.
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/ui/';

export interface Route {
  page: string;
  query: URLSearchParams;
}

function currentRoute(): Route {
  const path = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : '';
  return { page: path.split('/')[0] || 'status', query: new URLSearchParams(location.search) };
}

const listeners = new Set<() => void>();
addEventListener('popstate', () => listeners.forEach((l) => l()));

export function href(page: string, query?: Record<string, string>): string {
  const q = query ? new URLSearchParams(query).toString() : '';
  return `${BASE}${page}${q ? `?${q}` : ''}`;
}

export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  listeners.forEach((l) => l());
}

export function useRoute(): Route {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const l = () => setRoute(currentRoute());
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return route;
}

/** Same-page links: a plain click navigates without a reload; modified clicks open as the browser would. */
export function onLinkClick(e: MouseEvent): void {
  const a = (e.currentTarget as HTMLAnchorElement | null) ?? undefined;
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href') ?? BASE);
}

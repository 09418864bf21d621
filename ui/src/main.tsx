import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { onSealStatus, onTokenChange, type SealStatus, sealStatus, setToken, token } from './api';
import { Link, usePoll } from './components';
import { href, navigate, useRoute } from './router';
import { AccessPage } from './pages/access';
import { InitPage } from './pages/init';
import { LoginPage } from './pages/login';
import { RekeyPage } from './pages/rekey';
import { RotatePage } from './pages/rotate';
import { SecretsPage } from './pages/secrets';
import { StatusPage } from './pages/status';
import { UnsealPage } from './pages/unseal';

const PAGES: { id: string; title: string }[] = [
  { id: 'status', title: 'Status' },
  { id: 'init', title: 'Init' },
  { id: 'unseal', title: 'Unseal' },
  { id: 'rekey', title: 'Rekey' },
  { id: 'rotate', title: 'Rotate' },
  { id: 'secrets', title: 'Secrets' },
  { id: 'access', title: 'Access' },
];

function useSignedIn(): boolean {
  const [signedIn, setSignedIn] = useState(token() !== undefined);
  useEffect(() => onTokenChange((t) => setSignedIn(t !== undefined)), []);
  return signedIn;
}

function SealBadge({ status }: { status: SealStatus | undefined }) {
  if (!status) return <span class="badge">…</span>;
  const text = !status.initialized ? 'not initialized' : status.sealed ? `sealed (${status.progress}/${status.t})` : 'unsealed';
  const kind = !status.initialized || status.sealed ? 'badge-warn' : 'badge-ok';
  return (
    <span class={`badge ${kind}`} id="seal-badge">
      {text}
    </span>
  );
}

function App() {
  const route = useRoute();
  const signedIn = useSignedIn();
  const [seal, setSeal] = useState<SealStatus | undefined>(undefined);
  useEffect(() => onSealStatus(setSeal), []);
  usePoll(async () => {
    try {
      await sealStatus();
    } catch {
      // The pages show the API's error; the badge keeps its last state.
    }
  }, 3000);

  const signOut = () => {
    setToken(undefined);
    navigate(href('login'));
  };

  const known = PAGES.some((p) => p.id === route.page) || route.page === 'login';
  let page;
  switch (route.page) {
    case 'status':
      page = <StatusPage />;
      break;
    case 'login':
      page = <LoginPage next={route.query.get('next') ?? undefined} />;
      break;
    case 'init':
      page = <InitPage />;
      break;
    case 'unseal':
      page = <UnsealPage />;
      break;
    case 'rekey':
      page = <RekeyPage />;
      break;
    case 'rotate':
      page = <RotatePage />;
      break;
    case 'secrets':
      page = <SecretsPage query={route.query} />;
      break;
    case 'access':
      page = <AccessPage />;
      break;
    default:
      page = (
        <section>
          <h1>Page not found</h1>
          <p>
            The console has no page “{route.page}”. <Link to={href('status')}>Go to the status page</Link>.
          </p>
        </section>
      );
  }

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand">keyward</span>
        <nav aria-label="Console">
          <ul>
            {PAGES.map((p) => (
              <li key={p.id}>
                <Link to={href(p.id)} class={route.page === p.id ? 'current' : undefined}>
                  {route.page === p.id ? <span aria-current="page">{p.title}</span> : p.title}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <div class="session">
          <SealBadge status={seal} />
          {signedIn ? (
            <button type="button" class="small" id="sign-out" onClick={signOut}>
              Sign out
            </button>
          ) : (
            <Link to={href('login', { next: location.pathname + location.search })} class="button small">
              Sign in
            </Link>
          )}
        </div>
      </header>
      <main id="main" data-page={known ? route.page : 'unknown'}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);

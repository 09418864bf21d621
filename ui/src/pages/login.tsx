import { useState } from 'preact/hooks';
import { api, setToken, token } from '../api';
import { Errors, Field, Notice, useAction, usePageTitle } from '../components';
import { BASE, href, navigate } from '../router';

interface LookupSelf {
  data: { display_name: string; policies: string[]; ttl: number; accessor: string };
}

/** Only a page of this console may be the place a sign-in returns to. */
function safeNext(next: string | undefined): string {
  return next && next.startsWith(BASE) && !next.startsWith('//') && !next.startsWith(`${BASE}login`) ? next : href('status');
}

export function LoginPage({ next }: { next?: string }) {
  usePageTitle('Sign in');
  const [value, setValue] = useState('');
  const [run, busy, error] = useAction();

  const submit = (e: Event) => {
    e.preventDefault();
    const candidate = value.trim();
    void run(async () => {
      await api<LookupSelf>('GET', 'auth/token/lookup-self', undefined, candidate);
      setToken(candidate);
      setValue('');
      navigate(safeNext(next));
    });
  };

  return (
    <section>
      <h1>Sign in</h1>
      {token() && <Notice>A token is signed in in this tab. Signing in with another replaces it.</Notice>}
      <form class="card narrow" onSubmit={submit}>
        <Field id="login-token" label="Token" hint="Kept in this tab's session storage until you sign out or close the tab; sent only to this keyward's API.">
          {(p) => (
            <input
              {...p}
              type="password"
              autocomplete="off"
              spellcheck={false}
              required
              value={value}
              onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
            />
          )}
        </Field>
        <div class="actions">
          <button type="submit" class="primary" disabled={busy}>
            Sign in
          </button>
        </div>
        <Errors error={error} />
      </form>
    </section>
  );
}

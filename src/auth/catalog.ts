import type { BarrierView } from '../barrier/view.js';
import { AppRoleMethod } from './approle.js';
import { CertMethod } from './cert.js';
import { JwtMethod } from './jwt.js';
import type { AuthMethod, AuthMethodDeps, AuthType } from './method.js';
import { UserpassMethod } from './userpass.js';

/** The auth method serving a mount of `type`, over the mount's barrier view. */
export function createAuthMethod(type: AuthType, view: BarrierView, deps: AuthMethodDeps): AuthMethod {
  switch (type) {
    case 'approle':
      return new AppRoleMethod(view, deps);
    case 'userpass':
      return new UserpassMethod(view, deps);
    case 'cert':
      return new CertMethod(view, deps);
    case 'jwt':
      return new JwtMethod(view, deps);
  }
}

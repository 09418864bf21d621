import { freshNssToken } from './support/nss.js';
import { describeNssToken } from './support/nss-token-suite.js';

describeNssToken('NSS softokn', freshNssToken);

import { freshNssFipsToken } from './support/nss.js';
import { describeNssToken } from './support/nss-token-suite.js';

describeNssToken('NSS softokn in FIPS mode', freshNssFipsToken);

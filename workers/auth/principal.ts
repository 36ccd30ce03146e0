export { boundOrg, type Principal } from '../../shared/principal';

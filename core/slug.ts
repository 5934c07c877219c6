/**
 * The shape of every slug a URL carries: orgs, servers, environments. 2-64 lowercase letters,
 * digits or dashes, not starting or ending with a dash (e.g. acme-labs). A leaf: anything may use it.
 */
export const SLUG_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$';

import pkg from '../package.json' with { type: 'json' };

export const PYLEE_VERSION: string = pkg.version;

import adapter from '@sveltejs/adapter-static';

/** A single-page app: every route renders in the browser; the API serves index.html for unknown paths. */
export default {
  kit: {
    adapter: adapter({ fallback: 'index.html', strict: false }),
    // Hashes of SvelteKit's inline bootstrap script go into a CSP meta tag: nothing else may run.
    csp: {
      mode: 'hash',
      directives: {
        'default-src': ['self'],
        'script-src': ['self'],
        'style-src': ['self', 'unsafe-inline'],
        'img-src': ['self', 'data:'],
        'connect-src': ['self'],
        'object-src': ['none'],
        'base-uri': ['none'],
        'form-action': ['self'],
      },
    },
    version: { pollInterval: 0 },
  },
};

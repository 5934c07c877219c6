// A single-page app: nothing renders on the server, nothing is prerendered but the fallback page.
export const ssr = false;
export const prerender = false;

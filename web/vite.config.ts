import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [sveltekit()],
  // Bundle SvelteKit's own `cookie` (0.6) into the build-time renderer: left external, it would resolve to
  // the repository's newer `cookie`, whose API differs.
  ssr: { noExternal: ['cookie'] },
  build: { rolldownOptions: { checks: { pluginTimings: false } } },
  // `vite dev` proxies the API to a running `npm start`.
  server: { proxy: { '/api': 'http://127.0.0.1:8080' } },
});

import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';
import svelte from 'eslint-plugin-svelte';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'data/',
      'test-results/',
      'web/build/',
      'web/.svelte-kit/',
      'test/web/artifacts/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      globals: globals.node,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  { files: ['**/*.js', '**/*.mjs'], languageOptions: { globals: globals.node } },
  // The web UI (SvelteKit, browser code): its own tsconfig (web/tsconfig.json) and the Svelte rules.
  ...svelte.configs.recommended,
  {
    files: ['web/**/*.ts', 'web/**/*.svelte', 'web/**/*.svelte.ts'],
    languageOptions: {
      globals: globals.browser,
      parserOptions: {
        projectService: true,
        extraFileExtensions: ['.svelte'],
        parser: tseslint.parser,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      'no-console': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // SvelteKit's own links are plain hrefs; resolve() adds nothing for an app served at /.
      'svelte/no-navigation-without-resolve': 'off',
    },
  },
);

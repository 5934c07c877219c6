import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';

/**
 * Fails the run early when a store the suite was told to use is unreachable, rather than letting
 * each test time out. `PYLEE_TEST_REQUIRE_POSTGRES=1` (set by `.ci/run`) makes a missing
 * PostgreSQL an error instead of a PGlite-only run; `PYLEE_TEST_REQUIRE_BROWSER=1` does the same for
 * Chromium and the built web UI, which the browser suites otherwise skip.
 */
export default async function setup(): Promise<void> {
  if (process.env.PYLEE_TEST_REQUIRE_BROWSER) {
    const chromium = process.env.PYLEE_TEST_CHROMIUM ?? '/usr/bin/chromium';
    if (!fs.existsSync(chromium))
      throw new Error(`PYLEE_TEST_REQUIRE_BROWSER is set but ${chromium} is missing`);
    const index = path.resolve(import.meta.dirname, '../../web/build/index.html');
    if (!fs.existsSync(index)) throw new Error(`PYLEE_TEST_REQUIRE_BROWSER is set but ${index} is not built`);
  }
  const url = process.env.PYLEE_TEST_DATABASE_URL;
  if (!url) {
    if (process.env.PYLEE_TEST_REQUIRE_POSTGRES) {
      throw new Error('PYLEE_TEST_REQUIRE_POSTGRES is set but PYLEE_TEST_DATABASE_URL is not');
    }
    process.stderr.write(
      'pylee tests: PYLEE_TEST_DATABASE_URL unset; Postgres contract runs on PGlite only\n',
    );
    return;
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    throw new Error(
      `PYLEE_TEST_DATABASE_URL is set but PostgreSQL does not answer: ${(error as Error).message}`,
      { cause: error },
    );
  } finally {
    await client.end().catch(() => {});
  }
}

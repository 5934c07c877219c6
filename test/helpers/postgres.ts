import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * A real PostgreSQL server for tests: `PYLEE_TEST_DATABASE_URL` names one with the right to
 * create databases (`.ci/run` starts Debian's and sets it). Each test file gets a database of its own.
 */
export const POSTGRES_ADMIN_URL = process.env.PYLEE_TEST_DATABASE_URL;

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createTestDatabase(adminUrl = POSTGRES_ADMIN_URL): Promise<TestDatabase> {
  if (!adminUrl) throw new Error('PYLEE_TEST_DATABASE_URL is not set');
  const name = `pylee_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

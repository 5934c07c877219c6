import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TELEMETRY_TABLES } from '#core/warehouse/spool.ts';
import { WalFullError, WriteAheadLog, type WalRange } from '#core/warehouse/wal.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// The log on a real file system, without ClickHouse: what an earlier process left is what the next
// one recovers. A process that "crashes" here is a log that is never closed.

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
});

function walDir(): string {
  const dir = tempDir('pylee-wal');
  dirs.push(dir);
  return dir;
}

const lines = (n: number, first = 0) => Array.from({ length: n }, (_, i) => `{"i":${first + i}}\n`);

/** Appends rows and resolves with their range once they are durable. */
async function append(wal: WriteAheadLog, rows: string[], origin = 'req'): Promise<WalRange> {
  let range: WalRange | undefined;
  await wal.appendRows('requests', rows, origin, (r) => (range = r));
  return range as WalRange;
}

const segments = (dir: string) => fs.readdirSync(dir).filter((f) => f.endsWith('.wal'));

describe('write-ahead log', () => {
  it('recovers every durable row after a crash, in new batches that keep their tokens across a second crash', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir, { batchSize: 4 });
    const [a, b] = await Promise.all([append(wal, lines(3), 'req-a'), append(wal, lines(3, 3), 'req-b')]);
    expect([a, b]).toEqual([
      { from: 0, to: 3 },
      { from: 3, to: 6 },
    ]);
    await append(wal, [], 'req-empty');

    const first = WriteAheadLog.open(dir, { batchSize: 4 });
    expect(first.recovered.map((r) => r.lines)).toEqual([lines(4), lines(2, 4)]);
    expect(first.recovered[0]?.origins).toEqual([
      { requestId: 'req-a', rows: 3 },
      { requestId: 'req-b', rows: 1 },
    ]);
    // Crashed again before discarding: the same batches with the same tokens.
    const second = WriteAheadLog.open(dir, { batchSize: 4 });
    expect(second.recovered.map((r) => r.token)).toEqual(first.recovered.map((r) => r.token));
    expect(second.recovered.map((r) => r.lines)).toEqual(first.recovered.map((r) => r.lines));

    second.discardRecovered();
    expect(WriteAheadLog.open(dir).recovered).toEqual([]);
  });

  it('numbers the rows of each table apart, session events included, and recovers them per table', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir);
    const ranges = await Promise.all(
      TELEMETRY_TABLES.map(async (table) => {
        let range: WalRange | undefined;
        await wal.appendRows(table, lines(2), `req-${table}`, (r) => (range = r));
        return range;
      }),
    );
    expect(ranges).toEqual(TELEMETRY_TABLES.map(() => ({ from: 0, to: 2 })));

    const recovered = WriteAheadLog.open(dir).recovered;
    expect(recovered.map((r) => [r.table, r.lines, r.origins])).toEqual(
      TELEMETRY_TABLES.map((table) => [table, lines(2), [{ requestId: `req-${table}`, rows: 2 }]]),
    );
  });

  it('rebuilds a logged batch with its own token, and skips batches released before the crash', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir);
    const range = await append(wal, lines(5));
    await wal.appendBatch('requests', '01900000-0000-7000-8000-00000000000a', { from: 0, to: 2 });
    await wal.appendBatch('requests', '01900000-0000-7000-8000-00000000000b', { from: 2, to: 5 });
    wal.release('requests', '01900000-0000-7000-8000-00000000000a', { from: 0, to: 2 });
    await wal.appendBatch('requests', 'flush', { from: 5, to: 5 }); // waits for the release record
    expect(range).toEqual({ from: 0, to: 5 });

    const recovered = WriteAheadLog.open(dir).recovered;
    expect(recovered).toEqual([
      {
        table: 'requests',
        token: '01900000-0000-7000-8000-00000000000b',
        lines: lines(3, 2),
        origins: [{ requestId: 'req', rows: 3 }],
      },
    ]);
  });

  it('deletes a segment once every row in it is released, and keeps the ones still needed', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir, { segmentBytes: 200 });
    const ranges: WalRange[] = [];
    for (let i = 0; i < 6; i++) ranges.push(await append(wal, lines(4, i * 4)));
    expect(segments(dir).length).toBeGreaterThan(3);
    const before = wal.bytes;

    // Released out of order: nothing goes until the oldest is released too.
    for (const r of ranges.slice(1, 5)) wal.release('requests', `t${r.from}`, r);
    expect(wal.bytes).toBe(before);
    wal.release('requests', 't0', ranges[0] as WalRange);
    expect(wal.bytes).toBeLessThan(before);

    const recovered = WriteAheadLog.open(dir, { batchSize: 100 }).recovered;
    expect(recovered.flatMap((r) => r.lines)).toEqual(lines(4, 20));
  });

  it('stops at a torn record: a write that never finished was never acknowledged', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir);
    await append(wal, lines(2));
    await append(wal, lines(2, 2));
    const [file] = segments(dir);
    const full = path.join(dir, file as string);
    fs.truncateSync(full, fs.statSync(full).size - 3);

    expect(WriteAheadLog.open(dir, { batchSize: 100 }).recovered.flatMap((r) => r.lines)).toEqual(lines(2));
  });

  it('stops at a damaged record (checksum mismatch)', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir);
    await append(wal, lines(2));
    await append(wal, lines(2, 2));
    const full = path.join(dir, segments(dir)[0] as string);
    const data = fs.readFileSync(full);
    data[data.length - 5] = data[data.length - 5] === 0x31 ? 0x32 : 0x31;
    fs.writeFileSync(full, data);

    expect(WriteAheadLog.open(dir, { batchSize: 100 }).recovered.flatMap((r) => r.lines)).toEqual(lines(2));
  });

  it('refuses an append past its size bound and keeps nothing of it', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir, { maxBytes: 300 });
    await append(wal, lines(40));
    let ran = false;
    expect(() => wal.appendRows('requests', lines(1), 'req', () => (ran = true))).toThrow(WalFullError);
    expect(ran).toBe(false);
    expect(WriteAheadLog.open(dir, { batchSize: 100 }).recovered.flatMap((r) => r.lines)).toEqual(lines(40));
  });

  it('shares one write among appends made together and runs their callbacks in append order', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir);
    const order: number[] = [];
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        wal.appendRows('requests', lines(1, i), `r${i}`, () => order.push(i)),
      ),
    );
    expect(order).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // One group: the 50 records follow the segment header with nothing between them.
    const recovered = WriteAheadLog.open(dir, { batchSize: 100 }).recovered;
    expect(recovered).toHaveLength(1);
    expect(recovered[0]?.origins).toHaveLength(50);
  });

  it('deletes its segments on a clean close after everything was stored', async () => {
    const dir = walDir();
    const wal = WriteAheadLog.open(dir);
    const range = await append(wal, lines(3));
    wal.release('requests', 't', range);
    await wal.close(true);
    expect(segments(dir)).toEqual([]);
  });
});

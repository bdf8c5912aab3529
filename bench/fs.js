// Files under Node.js fs.promises (libuv's thread pool): read N small files
// (10,000 of 1 KiB) with readFile, 64 at a time; then read one MIB MiB file
// (256) from start to end in 1 MiB reads into one buffer. The files are
// made in DIR (default $TMPDIR/tide-bench-fs) on the first run and shared
// with bench/fs.lua, bench/fs_luv.lua and bench/fs.py.
// Usage: node bench/fs.js [DIR [N [MIB]]]. Prints small_files_per_s and
// bigfile_mb_per_s (MB = 10^6 bytes).
'use strict';
const fs = require('fs');
const fsp = fs.promises;
const dir = process.argv[2] || `${process.env.TMPDIR || '/tmp'}/tide-bench-fs`;
const n = Number(process.argv[3] || 10000);
const mib = Number(process.argv[4] || 256);

function setup() {
  const ready = `${dir}/ready-${n}-${mib}`;
  if (fs.existsSync(ready)) return;
  fs.mkdirSync(`${dir}/small`, { recursive: true });
  const body = '0123456789abcdef'.repeat(64);
  for (let i = 0; i < n; i++) fs.writeFileSync(`${dir}/small/${i}`, body);
  const block = Buffer.from('tide bench data\n'.repeat(65536));
  const fd = fs.openSync(`${dir}/big`, 'w');
  for (let i = 0; i < mib; i++) fs.writeSync(fd, block);
  fs.closeSync(fd);
  fs.writeFileSync(ready, '');
}

async function main() {
  setup();
  let next = 0, bytes = 0;
  async function reader() {
    while (next < n) {
      const i = next++;
      const data = await fsp.readFile(`${dir}/small/${i}`);
      bytes += data.length;
    }
  }
  let t0 = process.hrtime.bigint();
  const readers = [];
  for (let i = 0; i < 64; i++) readers.push(reader());
  await Promise.all(readers);
  if (bytes !== n * 1024) throw new Error('short read');
  console.log(`small_files_per_s\t${(n / (Number(process.hrtime.bigint() - t0) / 1e9)).toFixed(0)}`);

  t0 = process.hrtime.bigint();
  const fh = await fsp.open(`${dir}/big`);
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let total = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, null);
    if (bytesRead === 0) break;
    total += bytesRead;
  }
  await fh.close();
  if (total !== mib * 1024 * 1024) throw new Error('short read');
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`bigfile_mb_per_s\t${(total / 1e6 / s).toFixed(1)}`);
}

main();

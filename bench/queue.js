// Queues and locks under Node.js, with a minimal promise-based bounded
// queue and lock: N integers through a Queue(1) and a Queue(100) from a
// producer to a consumer; N uncontended acquire/release pairs; N contended
// pairs shared by 4 async functions that each yield while holding the lock.
// Both hand over directly: put resolves a waiting getter with its item, get
// moves a waiting putter's item in, release resolves the next acquirer.
// Usage: node queue.js [N]   (default 1000000). Prints <metric>\t<value>.
const N = Number(process.argv[2] || 1000000);
if (!Number.isInteger(N) || N <= 0) throw new Error("usage: queue.js [N]");

class Queue {
  constructor(max) {
    this.max = max;
    this.buf = new Array(max);
    this.head = 0;
    this.n = 0;
    this.getters = [];   // resolve functions
    this.putters = [];   // [resolve, item]
  }
  put(v) {             // undefined when done at once, else a promise
    if (this.getters.length > 0) return void this.getters.shift()(v);
    if (this.n < this.max) {
      this.buf[(this.head + this.n++) % this.max] = v;
      return;
    }
    return new Promise((resolve) => this.putters.push([resolve, v]));
  }
  get() {              // the item when there is one, else a promise of it
    if (this.n === 0) return new Promise((resolve) => this.getters.push(resolve));
    const v = this.buf[this.head];
    this.buf[this.head] = undefined;
    this.head = (this.head + 1) % this.max;
    if (this.putters.length > 0) {
      const [resolve, w] = this.putters.shift();
      this.buf[(this.head + this.n - 1) % this.max] = w;
      resolve();
    } else this.n--;
    return v;
  }
}

class Lock {
  constructor() {
    this.locked = false;
    this.waiters = [];
  }
  acquire() {
    if (!this.locked) {
      this.locked = true;
      return;
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  release() {
    if (this.waiters.length > 0) this.waiters.shift()();  // stays locked
    else this.locked = false;
  }
}

const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;

async function queue(size) {
  const q = new Queue(size);
  const t0 = process.hrtime.bigint();
  const consumer = (async () => {
    let sum = 0;
    for (let i = 0; i < N; i++) sum += await q.get();
    return sum;
  })();
  for (let i = 1; i <= N; i++) await q.put(i);
  if ((await consumer) !== (N * (N + 1)) / 2) throw new Error("lost items");
  return N / seconds(t0);
}

async function uncontended() {
  const lock = new Lock();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    await lock.acquire();
    lock.release();
  }
  return N / seconds(t0);
}

async function contended() {
  const lock = new Lock();
  const each = Math.floor(N / 4);
  const worker = async () => {
    for (let i = 0; i < each; i++) {
      await lock.acquire();
      await null;        // the others queue up meanwhile
      lock.release();
    }
  };
  const t0 = process.hrtime.bigint();
  await Promise.all([worker(), worker(), worker(), worker()]);
  return (4 * each) / seconds(t0);
}

(async () => {
  console.log(`queue1_items_per_s\t${Math.round(await queue(1))}`);
  console.log(`queue100_items_per_s\t${Math.round(await queue(100))}`);
  console.log(`lock_uncontended_per_s\t${Math.round(await uncontended())}`);
  console.log(`lock_contended_per_s\t${Math.round(await contended())}`);
})();

// A command's output, written to fd 1 with write(2). Node's process.stdout
// is a stream made on first use, for a pipe a socket (~6 ms of a short
// command's start-up), and a command's few lines need none of it. A pipe
// that is full and non-blocking (EAGAIN) hands the rest to process.stdout,
// which queues it; a reader that has gone (EPIPE) ends the output quietly,
// as it would with SIGPIPE.
import { writeSync } from 'node:fs';

let streamed = false;
let gone = false;

export function writeOut(text: string): void {
  if (gone) return;
  if (streamed) {
    process.stdout.write(text);
    return;
  }
  const bytes = Buffer.from(text);
  let off = 0;
  try {
    while (off < bytes.length) off += writeSync(1, bytes, off);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPIPE') {
      gone = true;
      return;
    }
    if (code !== 'EAGAIN') throw err;
    streamed = true;
    process.stdout.write(bytes.subarray(off));
  }
}

/** process.stdout, for what streams (a capture, a redrawn table): what it
 *  is given is flushed before the command exits. */
export function stdoutStream(): NodeJS.WriteStream {
  streamed = true;
  return process.stdout;
}

/** Resolves once what was handed to process.stdout has been written. */
export function outputFlushed(): Promise<void> {
  return streamed ? new Promise((resolve) => process.stdout.write('', () => resolve())) : Promise.resolve();
}

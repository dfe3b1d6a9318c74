import { constants } from 'node:os';
import { c } from './ffi.js';

// Built on the first error: reading os.constants loads node:os, which a
// command that never fails need not pay for.
let errnoNames: Map<number, string> | undefined;

// libbpf's own error codes (LIBBPF_ERRNO__*), starting at 4000.
const LIBBPF_ERRNOS = [
  'LIBELF', 'FORMAT', 'KVERSION', 'ENDIAN', 'INTERNAL', 'RELOC', 'LOAD', 'VERIFY', 'PROG2BIG', 'KVER',
  'PROGTYPE', 'WRNGPID', 'INVSEQ', 'NLPARSE',
];

export function errnoName(err: number): string {
  const libbpf = LIBBPF_ERRNOS[err - 4000];
  errnoNames ??= new Map(Object.entries(constants.errno).map(([name, num]) => [num, name]));
  return errnoNames.get(err) ?? (libbpf ? `LIBBPF_ERRNO__${libbpf}` : `errno ${err}`);
}

function describeErrno(err: number): string {
  const buf = Buffer.alloc(256);
  c.libbpf_strerror(err, buf, buf.length);
  return buf.toString('utf8', 0, buf.indexOf(0));
}

// What an errno usually means for the calls this project makes, in words an
// operator can act on. strerror() fills in the rest.
const HINTS: Record<string, string> = {
  EPERM: 'not permitted: run as root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)',
  EACCES: 'permission denied (for a program load: the verifier rejected it)',
  ENOENT: 'no such object',
  EEXIST: 'already exists',
  EBUSY: 'busy: something else holds it',
  ENODEV: 'no such device',
  EOPNOTSUPP: 'not supported by this kernel or driver',
  E2BIG: 'too big',
  EINVAL: 'invalid argument',
};

/** A failed libbpf or kernel call: which call, which errno, and a sentence. */
export class BpfError extends Error {
  readonly call: string;
  readonly errno: number;
  readonly code: string;

  constructor(call: string, err: number, context: string, log?: string) {
    const code = errnoName(err);
    const hint = HINTS[code] ?? describeErrno(err);
    const tail = log ? ` [libbpf: ${log}]` : '';
    super(`${context}: ${call} failed with ${code} (${hint})${tail}`);
    this.name = 'BpfError';
    this.call = call;
    this.errno = err;
    this.code = code;
  }
}

/** A libbpf-style return value: negative errno on failure. */
export function check(call: string, r: number, context: string): number {
  if (r < 0) throw new BpfError(call, -r, context);
  return r;
}

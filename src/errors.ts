/** An error the operator can fix: bad input (exit 2) or a refused request
 *  (exit 1). The message is one line naming the value and what was expected. */
export class XdplbError extends Error {
  readonly exitCode: 1 | 2;
  constructor(message: string, exitCode: 1 | 2 = 1) {
    super(message);
    this.name = 'XdplbError';
    this.exitCode = exitCode;
  }
}

/** Bad usage: a flag, a value, a slot number. Exit 2. */
export class UsageError extends XdplbError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}

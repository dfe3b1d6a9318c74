// An undo journal: each change that succeeded records how to take it back,
// and a failure part way takes back everything recorded, newest first. Used
// wherever a request changes several things that must change together
// (attaching to several interfaces, a filter's drop lists on several
// interfaces, a load balancer apply).
export class Undo {
  private steps: Array<() => void> = [];

  /** Record how to take back a change that has just been made. */
  push(step: () => void): void {
    this.steps.push(step);
  }

  /** Take back every recorded change, newest first. Best effort: a step
   *  that fails does not stop the others (the error that caused the
   *  rollback is the one to report). */
  rollback(): void {
    for (const step of this.steps.reverse()) {
      try {
        step();
      } catch {
        // keep undoing
      }
    }
    this.steps = [];
  }

  /** Run `fn` with a fresh journal: if it throws, what it recorded is
   *  taken back and the error is rethrown. */
  static run<T>(fn: (undo: Undo) => T): T {
    const undo = new Undo();
    try {
      return fn(undo);
    } catch (err) {
      undo.rollback();
      throw err;
    }
  }
}

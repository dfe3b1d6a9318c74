// JSON files an operator writes (the service config, a load balancer
// config): parsed with positions, so that every error names the file, line
// and column; a byte-order mark is skipped, a key given twice is refused,
// and a malformed document is explained in words.
import { findNodeAtLocation, getNodeValue, parseTree, printParseErrorCode, type Node, type ParseError } from 'jsonc-parser';

const WORDS: Record<string, string> = {
  InvalidSymbol: 'unexpected character',
  InvalidNumberFormat: 'invalid number',
  PropertyNameExpected: 'expected a key in double quotes',
  ValueExpected: 'expected a value',
  ColonExpected: "expected ':' after the key",
  CommaExpected: "expected ',' between entries",
  CloseBraceExpected: "expected '}'",
  CloseBracketExpected: "expected ']'",
  EndOfFileExpected: 'unexpected text after the end of the document',
  InvalidCommentToken: 'comments are not allowed in JSON',
  UnexpectedEndOfComment: 'comments are not allowed in JSON',
  UnexpectedEndOfString: 'unterminated string',
  UnexpectedEndOfNumber: 'unterminated number',
  InvalidUnicode: 'invalid \\u escape',
  InvalidEscapeCharacter: 'invalid escape in a string',
  InvalidCharacter: 'invalid character in a string (control characters must be escaped)',
};

export class JsonDoc {
  readonly text: string;
  readonly tree: Node;

  private constructor(readonly file: string, text: string, tree: Node) {
    this.text = text;
    this.tree = tree;
  }

  /** Parse `text`; `fail` makes the error to throw (one line). */
  static parse(text: string, file: string, fail: (message: string) => Error): JsonDoc {
    // A BOM is not JSON, but editors write one; dropping it keeps columns right.
    const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
    if (!body.trim()) throw fail(`${file}:1:1: invalid JSON: the file is empty`);
    const errors: ParseError[] = [];
    const tree = parseTree(body, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
    const doc = new JsonDoc(file, body, tree ?? { type: 'null', offset: 0, length: 0 } as Node);
    if (errors.length || !tree) {
      const e = errors[0];
      if (!e) throw fail(`${file}:1:1: invalid JSON: the file is empty`);
      throw fail(`${doc.at(e.offset)}: invalid JSON: ${WORDS[printParseErrorCode(e.error)] ?? printParseErrorCode(e.error)}`);
    }
    doc.checkDuplicates(tree, '', fail);
    return doc;
  }

  get value(): unknown {
    return getNodeValue(this.tree);
  }

  /** `file:line:column` of a character offset (both from 1). */
  at(offset: number): string {
    let line = 1;
    let start = 0;
    for (let i = 0; i < offset && i < this.text.length; i++) {
      if (this.text.charCodeAt(i) === 10) {
        line++;
        start = i + 1;
      }
    }
    return `${this.file}:${line}:${offset - start + 1}`;
  }

  /** The node at a key path like `vips[0].backends[1].port`, or the
   *  nearest existing parent (a missing key is reported at its object). */
  find(path: string, from: Node = this.tree): Node {
    const segments = [...path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)].map((m) => (m[2] !== undefined ? Number(m[2]) : m[1]));
    for (let n = segments.length; n > 0; n--) {
      const node = findNodeAtLocation(from, segments.slice(0, n));
      if (node) return node;
    }
    return from;
  }

  /** `file:line:column` of a key path's value. */
  where(path: string, from?: Node): string {
    return this.at(this.find(path, from).offset);
  }

  private checkDuplicates(node: Node, path: string, fail: (message: string) => Error): void {
    if (node.type === 'object') {
      const seen = new Set<string>();
      for (const prop of node.children ?? []) {
        const [key, value] = prop.children as [Node, Node];
        const name = key.value as string;
        const where = path ? `${path}.${name}` : name;
        if (seen.has(name)) throw fail(`${this.at(key.offset)}: ${where}: given twice`);
        seen.add(name);
        if (value) this.checkDuplicates(value, where, fail);
      }
    } else if (node.type === 'array') {
      (node.children ?? []).forEach((child, i) => this.checkDuplicates(child, `${path}[${i}]`, fail));
    }
  }
}

import { stringArg, type Tool, ToolError } from './tool';

const MAX_LENGTH = 500;

/**
 * `calculator {expression}` (risk low): arithmetic on numbers with + - * / % ^ and
 * parentheses, read by a small recursive-descent parser — never `eval`, so an expression
 * can compute and nothing else. The result is a string ("2+2" → "4"), rounded to 12
 * significant digits so 0.1+0.2 reads 0.3.
 */
export const calculatorTool: Tool = {
  spec: {
    name: 'calculator',
    description: 'Evaluates an arithmetic expression (+ - * / % ^, parentheses) and returns the result.',
    parameters: { type: 'object', properties: { expression: { type: 'string' } }, required: ['expression'], additionalProperties: false },
  },
  risk: 'low',
  run: async (args) => formatNumber(evaluate(stringArg(args, 'expression'))),
};

export function evaluate(expression: string): number {
  if (expression.length > MAX_LENGTH) throw new ToolError(`expression longer than ${MAX_LENGTH} characters`);
  const parser = new Parser(expression);
  const value = parser.expression();
  parser.end();
  if (!Number.isFinite(value)) throw new ToolError('the result is not a finite number (division by zero?)');
  return value;
}

export function formatNumber(value: number): string {
  return String(Number(value.toPrecision(12)));
}

/** expression := term (('+'|'-') term)* ; term := power (('*'|'/'|'%') power)* ; power := unary ('^' power)? ; unary := '-' unary | atom */
class Parser {
  private at = 0;

  constructor(private readonly text: string) {}

  expression(): number {
    let value = this.term();
    for (let op = this.peek(); op === '+' || op === '-'; op = this.peek()) {
      this.at++;
      const right = this.term();
      value = op === '+' ? value + right : value - right;
    }
    return value;
  }

  end(): void {
    if (this.peek() !== '') throw new ToolError(`unexpected "${this.peek()}" at position ${this.at + 1}`);
  }

  private term(): number {
    let value = this.power();
    for (let op = this.peek(); op === '*' || op === '/' || op === '%'; op = this.peek()) {
      this.at++;
      const right = this.power();
      value = op === '*' ? value * right : op === '/' ? value / right : value % right;
    }
    return value;
  }

  private power(): number {
    const base = this.unary();
    if (this.peek() !== '^') return base;
    this.at++;
    return base ** this.power();
  }

  private unary(): number {
    if (this.peek() === '-') {
      this.at++;
      return -this.unary();
    }
    if (this.peek() === '+') {
      this.at++;
      return this.unary();
    }
    return this.atom();
  }

  private atom(): number {
    if (this.peek() === '(') {
      this.at++;
      const value = this.expression();
      if (this.peek() !== ')') throw new ToolError(`missing ")" at position ${this.at + 1}`);
      this.at++;
      return value;
    }
    const match = /^\d+(\.\d+)?([eE][+-]?\d+)?|^\.\d+/.exec(this.text.slice(this.at));
    if (!match) throw new ToolError(this.peek() === '' ? 'the expression ends too early' : `unexpected "${this.peek()}" at position ${this.at + 1}`);
    this.at += match[0].length;
    this.skipSpaces();
    return Number(match[0]);
  }

  /** The next significant character ('' at the end). */
  private peek(): string {
    this.skipSpaces();
    return this.text.charAt(this.at);
  }

  private skipSpaces(): void {
    while (this.at < this.text.length && /\s/.test(this.text.charAt(this.at))) this.at++;
  }
}

/**
 * The parameterised header syntax GRIP uses (`value; name=param; name="quoted"`,
 * several such elements separated by commas), parsed without regular
 * expressions that could be made to backtrack by an origin's header.
 */

export interface HeaderElement {
  /** The element's value: a channel name, `<url>`, a number of seconds. */
  readonly value: string;
  /** Parameters by lower-case name; a bare parameter (`; foo`) has the empty string. */
  readonly params: ReadonlyMap<string, string>;
}

/** Thrown for syntax errors; the caller turns it into a 502 with the header's name. */
export class HeaderSyntaxError extends Error {}

/**
 * Split at `separator` where it is not inside a quoted string or `<…>`.
 * Quoted strings may contain backslash escapes (RFC 9110 section 5.6.4).
 */
function splitTopLevel(text: string, separator: ',' | ';'): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  let angle = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') {
      quoted = true;
    } else if (c === '<') {
      angle = true;
    } else if (c === '>') {
      angle = false;
    } else if (c === separator && !angle) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (quoted) throw new HeaderSyntaxError('an unterminated quoted string');
  parts.push(text.slice(start));
  return parts;
}

function unquote(text: string): string {
  if (!text.startsWith('"')) return text;
  if (text.length < 2 || !text.endsWith('"')) throw new HeaderSyntaxError('an unterminated quoted string');
  let out = '';
  for (let i = 1; i < text.length - 1; i++) {
    const c = text[i]!;
    if (c === '\\') {
      i++;
      if (i >= text.length - 1) throw new HeaderSyntaxError('a dangling backslash in a quoted string');
      out += text[i];
    } else {
      out += c;
    }
  }
  return out;
}

/** One element: `value; a=b; c="d"`. */
export function parseElement(text: string): HeaderElement {
  const [first, ...rest] = splitTopLevel(text, ';');
  const params = new Map<string, string>();
  for (const raw of rest) {
    const param = raw.trim();
    if (param === '') continue;
    const eq = param.indexOf('=');
    const name = (eq === -1 ? param : param.slice(0, eq)).trim().toLowerCase();
    if (name === '') throw new HeaderSyntaxError('a parameter without a name');
    params.set(name, eq === -1 ? '' : unquote(param.slice(eq + 1).trim()));
  }
  return { value: (first ?? '').trim(), params };
}

/** A comma-separated list of elements (node joins repeated headers with `, `, so this also reads several headers). */
export function parseList(text: string): HeaderElement[] {
  return splitTopLevel(text, ',')
    .filter((part) => part.trim() !== '')
    .map(parseElement);
}

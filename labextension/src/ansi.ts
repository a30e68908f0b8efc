/**
 * ANSI text: decoding a stream of text with escape sequences into styled text, and
 * rendering styled runs as DOM nodes.
 *
 * Only SGR (`ESC [ ... m`: colours, bold, italic, ...) is interpreted. Every other escape
 * sequence (cursor movement, erase, OSC titles and hyperlinks, APC/DCS/PM/SOS strings such
 * as ipylogfwd's own `ESC _ ... ESC \` markers) is stripped, never acted on. C0 controls
 * other than `\n`, `\r`, `\b` and `\t` are dropped. Sequences may be split across chunks:
 * the decoder keeps its state between calls (one decoder per stream).
 *
 * Text always reaches the DOM through text nodes / `textContent`; styles become our own
 * class names and colour values computed from numbers, never markup from the output.
 */

/** A palette index 0..255, or a truecolor [r, g, b]. */
export type Color = number | readonly [number, number, number];

export interface Style {
  readonly fg: Color | null;
  readonly bg: Color | null;
  readonly bold: boolean;
  readonly dim: boolean;
  readonly italic: boolean;
  readonly underline: boolean;
  readonly inverse: boolean;
  readonly strike: boolean;
}

export const PLAIN: Style = Object.freeze({
  fg: null,
  bg: null,
  bold: false,
  dim: false,
  italic: false,
  underline: false,
  inverse: false,
  strike: false
});

/** What the decoder produces; the line store implements it per stream. */
export interface TextSink {
  text(text: string, style: Style): void;
  newline(): void;
  carriageReturn(): void;
  backspace(): void;
}

const enum State {
  Ground,
  Escape,
  EscapeIntermediate,
  Csi,
  CsiIgnore,
  /** OSC: ends with BEL or ST. */
  OscString,
  /** DCS, APC, PM, SOS: end with ST. */
  String,
  /** ESC seen inside a string: `\` ends it (ST), anything else starts a new sequence. */
  StringEscape
}

/** Characters that end a run of plain text: C0 controls but TAB, DEL, C1 controls. */
const SPECIAL = /[\x00-\x08\x0a-\x1f\x7f-\x9f]/g;
/** CSI parameter + intermediate bytes kept at most (a longer one is garbage: dropped). */
const MAX_CSI = 64;

export class AnsiDecoder {
  private style: Style = PLAIN;
  private state: State = State.Ground;
  private csi = '';

  /** Back to the initial state (default style, no sequence in progress). */
  reset(): void {
    this.style = PLAIN;
    this.state = State.Ground;
    this.csi = '';
  }

  decode(text: string, sink: TextSink): void {
    const n = text.length;
    let i = 0;
    while (i < n) {
      if (this.state === State.Ground) {
        SPECIAL.lastIndex = i;
        const m = SPECIAL.exec(text);
        const j = m === null ? n : m.index;
        if (j > i) {
          sink.text(text.slice(i, j), this.style);
        }
        if (m === null) {
          return;
        }
        i = j + 1;
        switch (text.charCodeAt(j)) {
          case 0x0a:
            sink.newline();
            break;
          case 0x0d:
            sink.carriageReturn();
            break;
          case 0x08:
            sink.backspace();
            break;
          case 0x1b:
            this.state = State.Escape;
            break;
          default:
            break; // other controls: dropped
        }
        continue;
      }
      const c = text.charCodeAt(i);
      i++;
      switch (this.state) {
        case State.Escape:
          if (c === 0x5b /* [ */) {
            this.state = State.Csi;
            this.csi = '';
          } else if (c === 0x5d /* ] */) {
            this.state = State.OscString;
          } else if (c === 0x50 /* P */ || c === 0x5f /* _ */ || c === 0x5e /* ^ */ || c === 0x58 /* X */) {
            this.state = State.String;
          } else if (c >= 0x20 && c <= 0x2f) {
            this.state = State.EscapeIntermediate;
          } else if (c === 0x1b) {
            this.state = State.Escape;
          } else if (c < 0x20) {
            this.state = State.Ground;
            i--; // a control character cancels the sequence and is itself handled
          } else {
            this.state = State.Ground; // a two-character sequence (ESC 7, ESC c, ...): stripped
          }
          break;
        case State.EscapeIntermediate:
          if (c < 0x20) {
            this.state = c === 0x1b ? State.Escape : State.Ground;
            if (c !== 0x1b) {
              i--;
            }
          } else if (c > 0x2f) {
            this.state = State.Ground;
          }
          break;
        case State.Csi:
        case State.CsiIgnore:
          if (c >= 0x40 && c <= 0x7e) {
            if (this.state === State.Csi && c === 0x6d /* m */) {
              this.applySgr(this.csi);
            }
            this.state = State.Ground;
            this.csi = '';
          } else if (c >= 0x20 && c <= 0x3f) {
            if (this.state === State.Csi) {
              this.csi += text[i - 1];
              if (this.csi.length > MAX_CSI) {
                this.state = State.CsiIgnore;
                this.csi = '';
              }
            }
          } else if (c === 0x1b) {
            this.state = State.Escape;
            this.csi = '';
          } else {
            this.state = State.Ground;
            this.csi = '';
            i--;
          }
          break;
        case State.OscString:
        case State.String: {
          // Skip to the next possible terminator in one step (strings can be long).
          const osc = this.state === State.OscString;
          let k = i - 1;
          for (; k < n; k++) {
            const d = text.charCodeAt(k);
            if (d === 0x1b || (osc && d === 0x07) || d === 0x18 || d === 0x1a) {
              break;
            }
          }
          if (k === n) {
            i = n;
            break;
          }
          i = k + 1;
          const d = text.charCodeAt(k);
          this.state = d === 0x1b ? State.StringEscape : State.Ground;
          break;
        }
        case State.StringEscape:
          if (c === 0x5c /* \ */) {
            this.state = State.Ground;
          } else {
            this.state = State.Escape;
            i--;
          }
          break;
        default:
          this.state = State.Ground;
      }
    }
  }

  private applySgr(params: string): void {
    if (!/^[0-9;:]*$/.test(params)) {
      return; // private or other non-SGR forms ("?25", ">4;2"): ignored
    }
    const groups = params === '' ? [[0]] : params.split(';').map(g => g.split(':').map(p => (p === '' ? 0 : Number(p))));
    const s = { ...this.style } as { -readonly [K in keyof Style]: Style[K] };
    for (let k = 0; k < groups.length; k++) {
      const group = groups[k];
      const code = group[0];
      if (code === 38 || code === 48) {
        let color: Color | null | undefined;
        if (group.length > 1) {
          // Colon form: 38:5:n, 38:2:r:g:b or 38:2:<colorspace>:r:g:b.
          if (group[1] === 5 && group.length >= 3) {
            color = clampByte(group[2]);
          } else if (group[1] === 2 && group.length >= 5) {
            const rgb = group.slice(group.length >= 6 ? 3 : 2, (group.length >= 6 ? 3 : 2) + 3);
            color = [clampByte(rgb[0]), clampByte(rgb[1]), clampByte(rgb[2])];
          }
        } else {
          const mode = groups[k + 1]?.[0];
          if (mode === 5 && k + 2 < groups.length) {
            color = clampByte(groups[k + 2][0]);
            k += 2;
          } else if (mode === 2 && k + 4 < groups.length) {
            color = [clampByte(groups[k + 2][0]), clampByte(groups[k + 3][0]), clampByte(groups[k + 4][0])];
            k += 4;
          } else {
            k = groups.length; // malformed: ignore the rest, as terminals do
          }
        }
        if (color !== undefined) {
          if (code === 38) {
            s.fg = color;
          } else {
            s.bg = color;
          }
        }
        continue;
      }
      switch (code) {
        case 0:
          Object.assign(s, PLAIN);
          break;
        case 1:
          s.bold = true;
          break;
        case 2:
          s.dim = true;
          break;
        case 3:
          s.italic = true;
          break;
        case 4:
        case 21:
          s.underline = true;
          break;
        case 7:
          s.inverse = true;
          break;
        case 9:
          s.strike = true;
          break;
        case 22:
          s.bold = false;
          s.dim = false;
          break;
        case 23:
          s.italic = false;
          break;
        case 24:
          s.underline = false;
          break;
        case 27:
          s.inverse = false;
          break;
        case 29:
          s.strike = false;
          break;
        case 39:
          s.fg = null;
          break;
        case 49:
          s.bg = null;
          break;
        default:
          if (code >= 30 && code <= 37) {
            s.fg = code - 30;
          } else if (code >= 40 && code <= 47) {
            s.bg = code - 40;
          } else if (code >= 90 && code <= 97) {
            s.fg = code - 90 + 8;
          } else if (code >= 100 && code <= 107) {
            s.bg = code - 100 + 8;
          }
        // anything else (blink, fonts, overline, ...): ignored
      }
    }
    this.style = intern(s);
  }
}

/** Equal styles are one object: runs merge by identity and rendering is cached per style. */
const interned = new Map<string, Style>();

function colorKey(c: Color | null): string {
  return c === null ? '' : typeof c === 'number' ? String(c) : c.join(',');
}

function intern(s: Style): Style {
  if (isPlain(s)) {
    return PLAIN;
  }
  const flags = [s.bold, s.dim, s.italic, s.underline, s.inverse, s.strike].map(f => (f ? 1 : 0)).join('');
  const key = `${colorKey(s.fg)}/${colorKey(s.bg)}/${flags}`;
  let style = interned.get(key);
  if (style === undefined) {
    if (interned.size >= 4096) {
      interned.clear(); // truecolor gradients: keep the table bounded
    }
    style = Object.freeze({ ...s });
    interned.set(key, style);
  }
  return style;
}

function clampByte(n: number): number {
  return Number.isFinite(n) ? Math.max(0, Math.min(255, Math.trunc(n))) : 0;
}

function isPlain(s: Style): boolean {
  return (
    s.fg === null &&
    s.bg === null &&
    !s.bold &&
    !s.dim &&
    !s.italic &&
    !s.underline &&
    !s.inverse &&
    !s.strike
  );
}

// --- rendering ----------------------------------------------------------------------------

/** A piece of a line in one style. */
export interface Run {
  text: string;
  style: Style;
}

interface Rendered {
  className: string;
  color: string | null;
  background: string | null;
}

const renderedStyles = new WeakMap<Style, Rendered>();

/** The xterm 256-colour palette entry for 16..255, as a CSS colour. */
function paletteColor(n: number): string {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (x: number): number => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}

/** A colour as a class name (the 16 theme-aware colours) or a CSS colour value. */
function colorOf(c: Color, kind: 'fg' | 'bg'): { cls: string | null; css: string | null } {
  if (typeof c === 'number') {
    return c < 16 ? { cls: `ipylogfwd-${kind}-${c}`, css: null } : { cls: null, css: paletteColor(c) };
  }
  return { cls: null, css: `rgb(${c[0]}, ${c[1]}, ${c[2]})` };
}

function render(style: Style): Rendered {
  let r = renderedStyles.get(style);
  if (r !== undefined) {
    return r;
  }
  const classes: string[] = [];
  let color: string | null = null;
  let background: string | null = null;
  const fg = style.inverse ? style.bg : style.fg;
  const bg = style.inverse ? style.fg : style.bg;
  if (fg !== null) {
    const c = colorOf(fg, 'fg');
    if (c.cls !== null) {
      classes.push(c.cls);
    }
    color = c.css;
  } else if (style.inverse) {
    classes.push('ipylogfwd-inverse-fg');
  }
  if (bg !== null) {
    const c = colorOf(bg, 'bg');
    if (c.cls !== null) {
      classes.push(c.cls);
    }
    background = c.css;
  } else if (style.inverse) {
    classes.push('ipylogfwd-inverse-bg');
  }
  if (style.bold) {
    classes.push('ipylogfwd-bold');
  }
  if (style.dim) {
    classes.push('ipylogfwd-dim');
  }
  if (style.italic) {
    classes.push('ipylogfwd-italic');
  }
  if (style.underline) {
    classes.push('ipylogfwd-underline');
  }
  if (style.strike) {
    classes.push('ipylogfwd-strike');
  }
  r = { className: classes.join(' '), color, background };
  renderedStyles.set(style, r);
  return r;
}

/** Replace `el`'s content with `runs`, as text nodes and styled spans (never markup). */
export function renderRuns(el: HTMLElement, runs: readonly Run[]): void {
  if (runs.length === 1 && runs[0].style === PLAIN) {
    el.textContent = runs[0].text;
    return;
  }
  el.textContent = '';
  for (const run of runs) {
    if (run.style === PLAIN) {
      el.appendChild(document.createTextNode(run.text));
      continue;
    }
    const r = render(run.style);
    const span = document.createElement('span');
    if (r.className !== '') {
      span.className = r.className;
    }
    if (r.color !== null) {
      span.style.color = r.color;
    }
    if (r.background !== null) {
      span.style.backgroundColor = r.background;
    }
    span.textContent = run.text;
    el.appendChild(span);
  }
}

import type { Server as HttpServer } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { Server as TlsServer } from 'node:tls';

/*
 * The HTTP LIST method. Vault's CLI and its clients list with `LIST <path>`; Node's HTTP parser
 * (llhttp) knows a fixed set of methods and answers any other with 400, closing the connection.
 * So each request line `LIST <target> HTTP/1.x` is rewritten, before the parser sees it, into
 * `GET <target with list=true> HTTP/1.x`: the `?list=true` form every list route and the `list`
 * capability check already understand. Only request lines are rewritten: the rewriter follows each
 * request's framing (Content-Length, chunked Transfer-Encoding) as llhttp does, so body bytes pass
 * untouched whatever text they hold. A request whose framing it cannot follow exactly (conflicting
 * or malformed lengths, folded headers, an Upgrade) ends rewriting on that connection; llhttp
 * refuses most of those anyway, and the worst left is a later LIST's 400.
 *
 * Reading a socket in JavaScript costs Node several microseconds a read more than its native
 * parser does (about 6% of a KV read), so a connection starts native and switches to the rewriter
 * at its first LIST, which llhttp refuses at a request boundary it found itself.
 * README.md, "The LIST method", says what clients see.
 */

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;
const QUESTION = 63;
const AMPERSAND = 38;
const HASH = 35;
const EQUALS = 61;
const LIST_ = Buffer.from('LIST ', 'latin1');
const GET_ = Buffer.from('GET ', 'latin1');
const LIST_PARAM = Buffer.from('list', 'latin1');
const LIST_QUERY = Buffer.from('?list=true', 'latin1');
const LIST_PARAM_TRUE = Buffer.from('&list=true', 'latin1');
const SEPARATORS = [Buffer.from('?', 'latin1'), Buffer.from('&', 'latin1')] as const;
/** Longer than any Content-Length or Transfer-Encoding line a client sends; llhttp refuses heads over 16 KiB. */
const MAX_HEADER_LINE = 16 * 1024;

// Where in the request stream the rewriter is.
const RequestStart = 0; // before a request line (llhttp skips blank lines here)
const MaybeList = 1; // `matched` bytes of "LIST " seen (and held back)
const ListPath = 2; // a LIST target's path
const ListParamStart = 3; // a LIST query parameter's start: its separator and `matched` bytes of "list" held back
const ListParam = 4; // a LIST query parameter other than `list`
const ListDropParam = 5; // a LIST query parameter named `list`, dropped: the rewrite says list=true
const ListLineRest = 6; // the rest of a LIST request line (fragment, version), up to LF
const RequestLine = 7; // any other request line, up to LF
const HeaderStart = 8; // at the start of a header line
const HeaderSkip = 9; // a header line framing does not depend on
const HeaderKeep = 10; // a header line that may be Content-Length, Transfer-Encoding or Upgrade
const HeadEndLF = 11; // the head's closing CR seen, its LF next
const Body = 12; // `remaining` bytes of a Content-Length body
const ChunkSize = 13; // a chunk's size in hex
const ChunkSizeRest = 14; // chunk extensions, up to LF
const ChunkData = 15; // `remaining` bytes of chunk data
const ChunkDataCR = 16; // the CR after chunk data
const ChunkDataLF = 17; // the LF after chunk data
const TrailerStart = 18; // at the start of a trailer line (after the last chunk)
const TrailerSkip = 19; // a trailer line, up to LF
const TrailerEndLF = 20; // the trailers' closing CR seen, its LF next
const Passthrough = 21; // framing not followed: bytes pass unchanged from here on

const lower = (b: number): number => (b >= 65 && b <= 90 ? b | 0x20 : b);
const isSpace = (b: number): boolean => b === SP || b === HT;
/** Where a request target ends: its fragment, the space before the version, or a bare line end. */
const endsQuery = (b: number): boolean => b === HASH || b === SP || b === CR || b === LF;
const CONTENT_LENGTH = Buffer.from('content-length:', 'latin1');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding:', 'latin1');
const UPGRADE = Buffer.from('upgrade:', 'latin1');

/** Whether `line[start..end)` starts with `name` (lowercase, colon included), in any case. */
function startsWithName(line: Buffer, start: number, end: number, name: Buffer): boolean {
  if (end - start < name.length) return false;
  for (let k = 0; k < name.length; k++) if (lower(line[start + k]!) !== name[k]) return false;
  return true;
}

/**
 * Follows one connection's request stream and rewrites LIST request lines. `rewrite` takes each
 * chunk as it arrives and returns what the HTTP parser gets instead: the same Buffer when nothing
 * changes (the usual case, no copy), else the pieces to pass on in order. The rewrite streams: the
 * parser gets `GET ` as soon as `LIST ` is seen (so its header timeout runs as for any request),
 * then the target, with any `list` query parameter dropped and `list=true` added at its end. Only
 * a few bytes are ever held back (a method that may be LIST, a parameter name that may be `list`),
 * and those are known constants, so nothing is copied.
 */
export class ListMethodRewriter {
  private state = RequestStart;
  /** Bytes of "LIST " (MaybeList) or of "list" (ListParamStart) seen and held back. */
  private matched = 0;
  /** Whether the rewritten target has a query yet (its next parameter takes `&`, not `?`). */
  private hasQuery = false;
  private remaining = 0;
  private contentLength = -1;
  private transferEncoding = false;
  private chunked = false;
  private chunkDigits = 0;
  /** A copy of a header line begun in an earlier chunk (its bytes went on), read once its LF comes. */
  private headerCopy: Buffer[] = [];
  private headerCopyLength = 0;
  // The chunk being rewritten: its pieces so far, and where its bytes not yet in them start.
  private pieces: Buffer[] | undefined;
  private from = 0;

  /** What the parser gets for `chunk`: `chunk` itself, or pieces of it and rewritten bytes. */
  rewrite(chunk: Buffer): Buffer | Buffer[] {
    this.pieces = undefined;
    this.from = 0;
    const len = chunk.length;
    let i = 0;
    while (i < len) {
      const b = chunk[i]!;
      switch (this.state) {
        case RequestStart:
          if (b === CR || b === LF) i++;
          else {
            this.contentLength = -1;
            this.transferEncoding = false;
            this.chunked = false;
            this.matched = 0;
            this.state = b === LIST_[0] ? MaybeList : RequestLine;
          }
          break;
        case MaybeList:
          if (b === LIST_[this.matched]) {
            this.replace(chunk, i, i + 1);
            i++;
            if (++this.matched === LIST_.length) {
              this.replace(chunk, i, i, GET_);
              this.hasQuery = false;
              this.state = ListPath;
            }
          } else {
            // Not a LIST: what was held goes on as it came, and the line is an ordinary one.
            this.replace(chunk, i, i, LIST_.subarray(0, this.matched));
            this.state = RequestLine;
          }
          break;
        case ListPath:
          if (b === QUESTION) {
            this.replace(chunk, i, i + 1);
            this.matched = 0;
            this.state = ListParamStart;
            i++;
          } else if (endsQuery(b)) this.endQuery(chunk, i);
          else i++;
          break;
        case ListParamStart:
          if (this.matched < LIST_PARAM.length && b === LIST_PARAM[this.matched]) {
            this.replace(chunk, i, i + 1);
            this.matched++;
            i++;
          } else if (this.matched === 0 && b === AMPERSAND) {
            this.replace(chunk, i, i + 1); // an empty parameter
            i++;
          } else if (this.matched === 0 && endsQuery(b)) {
            this.endQuery(chunk, i);
          } else if (this.matched === LIST_PARAM.length && (b === EQUALS || b === AMPERSAND || endsQuery(b))) {
            this.state = ListDropParam; // the client's own `list`: dropped, the rewrite says list=true
          } else {
            // Another parameter: its separator and what was held of its name go on.
            this.replace(chunk, i, i, SEPARATORS[this.hasQuery ? 1 : 0]);
            this.replace(chunk, i, i, LIST_PARAM.subarray(0, this.matched));
            this.hasQuery = true;
            this.state = ListParam;
          }
          break;
        case ListParam:
        case ListDropParam: {
          let end = i;
          while (end < len && chunk[end] !== AMPERSAND && !endsQuery(chunk[end]!)) end++;
          if (this.state === ListDropParam) this.replace(chunk, i, end);
          i = end;
          if (end === len) break;
          if (chunk[end] === AMPERSAND) {
            this.replace(chunk, end, end + 1);
            i++;
            this.matched = 0;
            this.state = ListParamStart;
          } else this.endQuery(chunk, end);
          break;
        }
        case ListLineRest:
        case RequestLine:
        case HeaderSkip:
        case TrailerSkip: {
          const lf = chunk.indexOf(LF, i);
          if (lf < 0) i = len;
          else {
            i = lf + 1;
            this.state = this.state === TrailerSkip ? TrailerStart : HeaderStart;
          }
          break;
        }
        case HeaderStart:
          if (b === LF) {
            i++;
            this.headEnded();
          } else if (b === CR) {
            i++;
            this.state = HeadEndLF;
          } else if (isSpace(b)) {
            this.state = Passthrough; // a folded header line
          } else {
            const l = lower(b);
            this.state = l === CONTENT_LENGTH[0] || l === TRANSFER_ENCODING[0] || l === UPGRADE[0] ? HeaderKeep : HeaderSkip;
          }
          break;
        case HeaderKeep: {
          const lf = chunk.indexOf(LF, i);
          if (lf < 0) {
            // The line goes on; a copy of it waits for the rest.
            this.headerCopy.push(Buffer.from(chunk.subarray(i)));
            this.headerCopyLength += len - i;
            if (this.headerCopyLength > MAX_HEADER_LINE) this.state = Passthrough;
            i = len;
            break;
          }
          if (this.headerCopy.length === 0) this.headerLine(chunk, i, lf);
          else {
            const line = Buffer.concat([...this.headerCopy, chunk.subarray(i, lf)]);
            this.headerCopy = [];
            this.headerCopyLength = 0;
            this.headerLine(line, 0, line.length);
          }
          i = lf + 1;
          if (this.state === HeaderKeep) this.state = HeaderStart;
          break;
        }
        case HeadEndLF:
          if (b !== LF) this.state = Passthrough;
          else {
            i++;
            this.headEnded();
          }
          break;
        case Body:
        case ChunkData: {
          const n = Math.min(this.remaining, len - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.state = this.state === Body ? RequestStart : ChunkDataCR;
          break;
        }
        case ChunkSize: {
          const hex = hexValue(b);
          if (hex < 0) {
            this.state = this.chunkDigits === 0 ? Passthrough : ChunkSizeRest;
            break;
          }
          this.remaining = this.remaining * 16 + hex;
          this.chunkDigits++;
          if (this.remaining > Number.MAX_SAFE_INTEGER / 16) this.state = Passthrough;
          i++;
          break;
        }
        case ChunkSizeRest: {
          const lf = chunk.indexOf(LF, i);
          if (lf < 0) i = len;
          else {
            i = lf + 1;
            this.state = this.remaining === 0 ? TrailerStart : ChunkData;
          }
          break;
        }
        case ChunkDataCR:
        case ChunkDataLF:
          if (b !== (this.state === ChunkDataCR ? CR : LF)) this.state = Passthrough;
          else {
            i++;
            if (this.state === ChunkDataLF) this.startChunk();
            else this.state = ChunkDataLF;
          }
          break;
        case TrailerStart:
          i++;
          this.state = b === LF ? RequestStart : b === CR ? TrailerEndLF : TrailerSkip;
          break;
        case TrailerEndLF:
          if (b !== LF) this.state = Passthrough;
          else {
            i++;
            this.state = RequestStart;
          }
          break;
        default:
          // Passthrough: the rest goes on unchanged.
          this.headerCopy = [];
          i = len;
      }
    }
    // (replace() sets this.pieces, which the compiler cannot see from here.)
    const pieces = this.pieces as Buffer[] | undefined;
    this.pieces = undefined;
    if (!pieces) return chunk;
    if (this.from < len) pieces.push(chunk.subarray(this.from));
    return pieces;
  }

  /** What is held back at the end of the stream (part of an unfinished request line), to pass on as it came. */
  end(): Buffer[] {
    if (this.state === MaybeList) return [LIST_.subarray(0, this.matched)];
    if (this.state === ListParamStart) return [SEPARATORS[this.hasQuery ? 1 : 0], LIST_PARAM.subarray(0, this.matched)];
    return [];
  }

  /** In the output, `chunk[at..skipTo)` is replaced by `insert` (or dropped). */
  private replace(chunk: Buffer, at: number, skipTo: number, insert?: Buffer): void {
    const pieces = (this.pieces ??= []);
    if (at > this.from) pieces.push(chunk.subarray(this.from, at));
    if (insert && insert.length > 0) pieces.push(insert);
    this.from = skipTo;
  }

  /** The LIST target's query ends before `chunk[at]`: `list=true` goes there. */
  private endQuery(chunk: Buffer, at: number): void {
    this.replace(chunk, at, at, this.hasQuery ? LIST_PARAM_TRUE : LIST_QUERY);
    this.state = ListLineRest;
  }

  /** Notes what a complete header line `line[start..end)` (LF excluded) says about framing. */
  private headerLine(line: Buffer, start: number, end: number): void {
    if (end > start && line[end - 1] === CR) end--;
    if (startsWithName(line, start, end, CONTENT_LENGTH)) {
      const value = trimmed(line, start + CONTENT_LENGTH.length, end);
      // llhttp refuses a second Content-Length, and any but plain digits.
      if (this.contentLength >= 0 || !/^\d{1,15}$/.test(value)) this.state = Passthrough;
      else this.contentLength = Number(value);
    } else if (startsWithName(line, start, end, TRANSFER_ENCODING)) {
      const value = trimmed(line, start + TRANSFER_ENCODING.length, end);
      // As in llhttp, the body is chunked when the last coding named is `chunked`.
      this.transferEncoding = true;
      this.chunked = value.split(',').pop()!.trim().toLowerCase() === 'chunked';
    } else if (startsWithName(line, start, end, UPGRADE)) {
      this.state = Passthrough;
    }
  }

  private headEnded(): void {
    if (this.transferEncoding) {
      // llhttp refuses a request with both lengths, or whose last coding is not chunked.
      if (!this.chunked || this.contentLength >= 0) this.state = Passthrough;
      else this.startChunk();
    } else if (this.contentLength > 0) {
      this.remaining = this.contentLength;
      this.state = Body;
    } else this.state = RequestStart;
  }

  private startChunk(): void {
    this.remaining = 0;
    this.chunkDigits = 0;
    this.state = ChunkSize;
  }
}

function hexValue(b: number): number {
  if (b >= 48 && b <= 57) return b - 48;
  const l = lower(b);
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

function trimmed(line: Buffer, start: number, end: number): string {
  while (start < end && isSpace(line[start]!)) start++;
  while (end > start && isSpace(line[end - 1]!)) end--;
  return line.toString('latin1', start, end);
}

type Listener = Parameters<Socket['removeListener']>[1];
/** The socket events Node's HTTP server listens to for a connection. */
const HTTP_SOCKET_EVENTS = ['timeout', 'data', 'error', 'end', 'close', 'drain', 'resume', 'pause'] as const;
/** A connection on Node's native parser: its server, and the listeners Node's HTTP server put on the socket. */
interface NativeConnection {
  server: HttpServer;
  event: string;
  /** Listener counts before Node's connection listener ran; then the listeners it added. */
  before?: number[];
  httpListeners?: Array<[string, Listener]>;
}
const native = new WeakMap<Socket, NativeConnection>();
/** Connections switching to the rewriter: the bytes of their refused LIST request and what followed it. */
const switching = new WeakMap<Socket, Buffer[]>();
const LI = Buffer.from('LI', 'latin1');
const [L, I, S, U, N] = [...Buffer.from('LISUN', 'latin1')] as [number, number, number, number, number];

/** Node's own clean-up of a connection's parser (it leaves the server's connection list and stops reading the socket). */
const { freeParser } = createRequire(import.meta.url)('_http_common') as { freeParser(parser: unknown, req: null, socket: Socket): void };

/**
 * Makes `server` accept LIST. A connection starts on Node's native parser, at no cost; llhttp
 * refuses the first LIST on it (continueWithListMethod, from the server's clientError handler,
 * is told), and from that request on the connection reads through a ListMethodRewriter. The socket
 * stays the one Node and fastify know (its timeouts, TLS state, addresses, counters and limits
 * untouched); only its reads change path.
 */
export function acceptListMethod(server: HttpServer): void {
  // An HTTPS server parses HTTP on the TLS socket, after the handshake.
  const event = server instanceof TlsServer ? 'secureConnection' : 'connection';
  // Node's own connection listener runs between these two: what it adds to the socket is noted.
  server.prependListener(event, (socket: Socket) => {
    if (!switching.has(socket)) native.set(socket, { server, event, before: HTTP_SOCKET_EVENTS.map((e) => socket.listenerCount(e)) });
  });
  server.on(event, (socket: Socket) => {
    const replay = switching.get(socket);
    if (replay) {
      switching.delete(socket);
      readThroughRewriter(socket, replay);
      return;
    }
    const conn = native.get(socket)!;
    conn.httpListeners = HTTP_SOCKET_EVENTS.flatMap((e, k) => socket.listeners(e).slice(conn.before![k]).map((fn): [string, Listener] => [e, fn as Listener]));
    conn.before = undefined;
  });
}

/**
 * Whether llhttp stopped at the S of a LIST: it refuses a method at the first byte no method
 * continues with, and `LI` could still have been LINK. (It stops at that S after UNLI too, so an
 * UNLIST in view is not taken; a method that began in an earlier read is taken as LI, then checked
 * for `LIST ` by the rewriter.)
 */
function refusedList(raw: Buffer, at: number): boolean {
  if (raw[at] !== S || (at >= 1 && raw[at - 1] !== I) || (at >= 2 && raw[at - 2] !== L)) return false;
  return !(at >= 4 && raw[at - 4] === U && raw[at - 3] === N);
}

/**
 * For the server's clientError handler: whether `err` is llhttp refusing a LIST on a native
 * connection, which this module then serves (the handler must leave the socket alone). The failed
 * parser is freed; once replies still in flight on the connection have gone out (pipelined
 * requests before the LIST), Node's HTTP server takes the socket as a new connection that reads
 * through a rewriter, starting with the LIST request.
 */
export function continueWithListMethod(err: Error, socket: Socket): boolean {
  const { code, rawPacket, bytesParsed } = err as Error & { code?: string; rawPacket?: unknown; bytesParsed?: unknown };
  const conn = native.get(socket);
  if (code !== 'HPE_INVALID_METHOD' || !conn?.httpListeners || !Buffer.isBuffer(rawPacket) || typeof bytesParsed !== 'number') return false;
  if (!refusedList(rawPacket, bytesParsed)) return false;
  native.delete(socket);
  const received: Buffer[] = [LI, Buffer.from(rawPacket.subarray(bytesParsed))];
  freeParser((socket as unknown as { parser?: unknown }).parser, null, socket);
  // What fed the failed parser goes; bytes now arrive as 'data' and wait. The rest of Node's
  // listeners serve the replies in flight.
  const listeners = conn.httpListeners;
  for (const [e, fn] of listeners) if (e === 'data' || e === 'end') socket.removeListener(e, fn);
  const collect = (d: Buffer) => received.push(d);
  socket.on('data', collect);
  const switchWhenIdle = (): void => {
    if (socket.destroyed) return;
    const inFlight = (socket as unknown as { _httpMessage?: NodeJS.EventEmitter | null })._httpMessage;
    if (inFlight) return void inFlight.once('finish', () => process.nextTick(switchWhenIdle));
    socket.removeListener('data', collect);
    for (const [e, fn] of listeners) socket.removeListener(e, fn);
    socket.setTimeout(0);
    switching.set(socket, received);
    conn.server.emit(conn.event, socket);
  };
  process.nextTick(switchWhenIdle);
  return true;
}

const readThroughStream = (): void => {};

/** Reads the socket through a ListMethodRewriter from here on, starting with `replay`. */
function readThroughRewriter(socket: Socket, replay: Buffer[]): void {
  const rewriter = new ListMethodRewriter();
  const push = socket.push;
  // A socket's reads reach its stream (and the parser's 'data' listener) through push().
  socket.push = (chunk: Buffer | null, encoding?: BufferEncoding): boolean => {
    if (chunk === null) {
      for (const piece of rewriter.end()) push.call(socket, piece);
      return push.call(socket, null, encoding);
    }
    const out = rewriter.rewrite(chunk);
    if (out === chunk) return push.call(socket, chunk, encoding);
    let more = true;
    for (const piece of out as Buffer[]) more = push.call(socket, piece) && more;
    return more;
  };
  // Node reads a socket nobody else reads in JS natively, where push() is never called; a 'data'
  // listener keeps it reading through the stream.
  socket.on('data', readThroughStream);
  for (const bytes of replay) socket.push(bytes);
}

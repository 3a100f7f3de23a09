/**
 * node:zlib's native handle, driven directly as Node's own zlib.js drives it
 * (`stream._handle.writeSync`): input and output buffers are the caller's, so
 * a hot loop allocates nothing per call, and the work is synchronous. The
 * stream object around the handle only owns it; it is never written to.
 */
import zlib from "node:zlib";

interface ZlibHandle {
  reset(): void;
  writeSync(
    flush: number,
    input: Uint8Array,
    inputOffset: number,
    inputLength: number,
    output: Uint8Array,
    outputOffset: number,
    outputLength: number,
  ): void;
  /** Called synchronously, inside writeSync, when zlib fails. */
  onerror: (message: string, errno: number) => void;
}

const ERROR_CODES: Record<number, string> = {
  [-2]: "Z_STREAM_ERROR",
  [-3]: "Z_DATA_ERROR",
  [-4]: "Z_MEM_ERROR",
  [-5]: "Z_BUF_ERROR",
};

export class NativeZlib {
  readonly #handle: ZlibHandle;
  readonly #state: Uint32Array;
  #failure: Error | undefined;

  /** Takes over the handle of a new node:zlib stream (`zlib.createGunzip()`…). */
  constructor(stream: zlib.Gunzip | zlib.DeflateRaw) {
    const inner = stream as unknown as { _handle: ZlibHandle; _writeState: Uint32Array };
    this.#handle = inner._handle;
    this.#state = inner._writeState;
    this.#handle.onerror = (message, errno) => {
      // Like node:zlib's own errors: `code` is zlib's ("Z_DATA_ERROR"…).
      this.#failure ??= Object.assign(new Error(message), {
        code: ERROR_CODES[errno] ?? "Z_DATA_ERROR",
      });
    };
  }

  /** Starts a new, independent stream. */
  reset(): void {
    this.#handle.reset();
    this.#failure = undefined;
  }

  /**
   * One zlib call: consumes input into `output` until one of them runs out.
   * Returns the output and input bytes left over; throws zlib's error (a
   * truncated gzip stream ended with Z_FINISH is "unexpected end of file").
   */
  write(
    flush: number,
    input: Uint8Array,
    inputOffset: number,
    output: Uint8Array,
    outputOffset: number,
  ): { outputLeft: number; inputLeft: number } {
    this.#handle.writeSync(
      flush,
      input,
      inputOffset,
      input.length - inputOffset,
      output,
      outputOffset,
      output.length - outputOffset,
    );
    if (this.#failure !== undefined) throw this.#failure;
    return { outputLeft: this.#state[0], inputLeft: this.#state[1] };
  }
}

import { type Socket, connect } from 'node:net';

/** A raw TCP client that keeps everything it receives, for tests that look at exact bytes. */
export class RawClient {
  text = '';
  ended = false;
  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (piece: string) => {
      this.text += piece;
    });
    socket.on('close', () => {
      this.ended = true;
    });
    socket.on('error', () => {});
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  send(text: string): void {
    this.socket.write(text);
  }

  async until(predicate: (client: RawClient) => boolean, what: string, timeoutMs = 5000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!predicate(this)) {
      if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.text.slice(-400))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  get head(): string {
    const end = this.text.indexOf('\r\n\r\n');
    return end === -1 ? '' : this.text.slice(0, end);
  }

  get body(): string {
    const end = this.text.indexOf('\r\n\r\n');
    return end === -1 ? '' : this.text.slice(end + 4);
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Orders that must reach every node of a cluster (today: "disconnect these
 * connections"). One process alone needs nothing but a local call; nodes
 * sharing Redis pass them over a pub/sub channel. Payloads are JSON text.
 */
export interface ControlBus {
  /** Send to every node (this one included, unless it handled the order itself and says so with `from`). */
  send(payload: string): Promise<void>;
  setListener(listener: (payload: string) => void): void;
  close(): Promise<void>;
}

/** One process: an order sent is an order received, at once. */
export class LocalControlBus implements ControlBus {
  #listener: (payload: string) => void = () => {};

  async send(payload: string): Promise<void> {
    this.#listener(payload);
  }

  setListener(listener: (payload: string) => void): void {
    this.#listener = listener;
  }

  async close(): Promise<void> {}
}

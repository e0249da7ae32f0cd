/**
 * Orders that must reach every node of a cluster (today: "disconnect these
 * connections"). One process alone needs nothing but a local call; nodes
 * sharing Redis pass them over a pub/sub channel. Payloads are JSON text.
 */
export interface ControlBus {
  /** Send to every node, this one included (an order says which node sent it, so that one can skip its own). */
  send(payload: string): Promise<void>;
  /** Hear every order; returns the function that stops listening. Several servers of one process may listen. */
  listen(listener: (payload: string) => void): () => void;
  close(): Promise<void>;
}

/** One process: an order sent is an order received, at once. */
export class LocalControlBus implements ControlBus {
  readonly #listeners = new Set<(payload: string) => void>();

  async send(payload: string): Promise<void> {
    for (const listener of this.#listeners) listener(payload);
  }

  listen(listener: (payload: string) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {}
}

/** A minimal typed event emitter: `on` returns the function that removes the listener. */
export class Emitter<Events extends { [name: string]: (payload: never) => void }> {
  readonly #listeners = new Map<keyof Events, Set<Events[keyof Events]>>();

  on<K extends keyof Events>(name: K, listener: Events[K]): () => void {
    let set = this.#listeners.get(name);
    if (set === undefined) this.#listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  emit<K extends keyof Events>(name: K, payload: Parameters<Events[K]>[0]): void {
    const set = this.#listeners.get(name);
    if (set === undefined) return;
    for (const listener of [...set]) {
      // A listener that throws must not stop the others, nor the client's own bookkeeping.
      try {
        (listener as (payload: Parameters<Events[K]>[0]) => void)(payload);
      } catch (error) {
        reportListenerError(error);
      }
    }
  }
}

/**
 * Rethrow outside our call stack, so the error is visible (console, process 'uncaughtException') without breaking
 * delivery.
 */
export function reportListenerError(error: unknown): void {
  setTimeout(() => {
    throw error;
  }, 0);
}

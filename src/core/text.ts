/** `String.prototype.isWellFormed` (ES2024, in Node 20), typed here while the build targets ES2022's lib. */
interface WellFormedString {
  isWellFormed(): boolean;
}

/** True when `text` has no lone surrogate, i.e. it is Unicode text that UTF-8 can carry unchanged. */
export function isWellFormed(text: string): boolean {
  return (text as unknown as WellFormedString).isWellFormed();
}

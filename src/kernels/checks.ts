/** Argument checks shared by the reference and compressed kernels (messages match the native kernels'). */

/** RangeError unless `array` has at least `needed` elements. */
export function need(kernel: string, name: string, array: ArrayLike<number>, needed: number): void {
  if (array.length < needed) {
    throw new RangeError(`${kernel}: '${name}' has ${array.length} elements but ${needed} are needed (offset + extent)`);
  }
}

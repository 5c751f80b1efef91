// @peculiar/x509 registers its algorithms through tsyringe, which refuses to load unless the
// Reflect metadata API (the `reflect-metadata` polyfill) is present. This is the small part of it
// tsyringe calls — define, own lookup, and lookup through the prototype chain — installed only when
// no polyfill is there. Import it before @peculiar/x509.
type Target = object;
const store = new WeakMap<Target, Map<unknown, unknown>>();

interface MetadataReflect {
  getMetadata?(key: unknown, target: Target): unknown;
  getOwnMetadata?(key: unknown, target: Target): unknown;
  defineMetadata?(key: unknown, value: unknown, target: Target): void;
}

const reflect = Reflect as unknown as MetadataReflect;
if (typeof reflect.getMetadata !== 'function') {
  const own = (key: unknown, target: Target): unknown => store.get(target)?.get(key);
  reflect.getOwnMetadata = own;
  reflect.defineMetadata = (key, value, target) => {
    const map = store.get(target) ?? new Map<unknown, unknown>();
    map.set(key, value);
    store.set(target, map);
  };
  reflect.getMetadata = (key, target) => {
    for (let t: Target | null = target; t !== null; t = Object.getPrototypeOf(t) as Target | null) {
      const map = store.get(t);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
}

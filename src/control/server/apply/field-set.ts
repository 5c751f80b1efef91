// A set of field paths, as structured-merge-diff's fieldpath.Set: a trie whose edges are path
// elements written as in FieldsV1 ("f:name" a struct field or map key, "k:{…}" an associative
// list item by its key fields, "v:…" a set item by value, "i:N" a list index), and whose nodes
// say whether the path itself is in the set. Ownership of an object's fields is one of these per
// manager; conflicts, pruning and ownership transfer are set operations on them.

export type Path = readonly string[];

export class FieldSet {
  member = false;
  readonly children = new Map<string, FieldSet>();

  static of(...paths: Path[]): FieldSet {
    const set = new FieldSet();
    for (const p of paths) set.insert(p);
    return set;
  }

  insert(path: Path): void {
    let node: FieldSet = this;
    for (const element of path) {
      let next = node.children.get(element);
      if (next === undefined) {
        next = new FieldSet();
        node.children.set(element, next);
      }
      node = next;
    }
    node.member = true;
  }

  /** The node at `path`, if any path in the set goes through it. */
  at(path: Path): FieldSet | undefined {
    let node: FieldSet | undefined = this;
    for (const element of path) node = node?.children.get(element);
    return node;
  }

  has(path: Path): boolean {
    return this.at(path)?.member === true;
  }

  /** Whether some member lies strictly below `path`. */
  hasBelow(path: Path): boolean {
    const node = this.at(path);
    return node !== undefined && node.children.size > 0;
  }

  // Every operation keeps the trie free of empty nodes (no member at or below them), so a node is
  // empty exactly when it has no member flag and no children.

  isEmpty(): boolean {
    return !this.member && this.children.size === 0;
  }

  clone(): FieldSet {
    const out = new FieldSet();
    out.member = this.member;
    for (const [key, child] of this.children) out.children.set(key, child.clone());
    return out;
  }

  union(other: FieldSet): FieldSet {
    const out = new FieldSet();
    out.member = this.member || other.member;
    for (const [key, child] of this.children) {
      const theirs = other.children.get(key);
      out.children.set(key, theirs === undefined ? child.clone() : child.union(theirs));
    }
    for (const [key, child] of other.children) if (!this.children.has(key)) out.children.set(key, child.clone());
    return out;
  }

  /** Members of this set that are not members of `other` (a member of `other` removes only that path, not its children). */
  difference(other: FieldSet): FieldSet {
    const out = new FieldSet();
    out.member = this.member && !other.member;
    for (const [key, child] of this.children) {
      const theirs = other.children.get(key);
      const rest = theirs === undefined ? child.clone() : child.difference(theirs);
      if (!rest.isEmpty()) out.children.set(key, rest);
    }
    return out;
  }

  intersection(other: FieldSet): FieldSet {
    const out = new FieldSet();
    out.member = this.member && other.member;
    for (const [key, child] of this.children) {
      const theirs = other.children.get(key);
      if (theirs === undefined) continue;
      const both = child.intersection(theirs);
      if (!both.isEmpty()) out.children.set(key, both);
    }
    return out;
  }

  /** This set without anything at or below `prefix`. */
  without(prefix: Path): FieldSet {
    if (prefix.length === 0) return new FieldSet();
    const [first, ...rest] = prefix as [string, ...string[]];
    const child = this.children.get(first);
    if (child === undefined) return this;
    const out = new FieldSet();
    out.member = this.member;
    for (const [key, c] of this.children) if (key !== first) out.children.set(key, c.clone());
    const kept = child.without(rest);
    if (!kept.isEmpty()) out.children.set(first, kept);
    return out;
  }

  /** Only what lies at or below `prefix`. */
  only(prefix: Path): FieldSet {
    const node = this.at(prefix);
    if (node === undefined) return new FieldSet();
    let out = node.clone();
    for (const element of [...prefix].reverse()) {
      const parent = new FieldSet();
      parent.children.set(element, out);
      out = parent;
    }
    return out;
  }

  /** Every member path, parents before children, siblings in FieldsV1 order. */
  members(): Path[] {
    const out: Path[] = [];
    const walk = (node: FieldSet, prefix: string[]): void => {
      if (node.member) out.push(prefix);
      for (const key of sortedKeys(node.children.keys())) walk(node.children.get(key) as FieldSet, [...prefix, key]);
    };
    walk(this, []);
    return out;
  }

  equals(other: FieldSet): boolean {
    return this.difference(other).isEmpty() && other.difference(this).isEmpty();
  }
}

const RANK: Record<string, number> = { f: 0, k: 1, v: 2, i: 3 };

/** Path elements in structured-merge-diff's order: fields, then keyed items, values, indexes. */
export function sortedKeys(keys: Iterable<string>): string[] {
  return [...keys].sort((a, b) => {
    const ra = RANK[a[0] ?? ''] ?? 4;
    const rb = RANK[b[0] ?? ''] ?? 4;
    if (ra !== rb) return ra - rb;
    if (ra === 3) return Number(a.slice(2)) - Number(b.slice(2));
    return a < b ? -1 : a > b ? 1 : 0;
  });
}

// ------------------------------------------------------------------ path elements

export function fieldElement(name: string): string {
  return `f:${name}`;
}

/** k:{"a":1,"b":"x"}: the item's key fields (a missing one from `defaults`), sorted by name, as JSON. */
export function keyElement(item: Record<string, unknown>, keys: readonly string[], defaults: Readonly<Record<string, unknown>> = {}): string {
  const fields: Record<string, unknown> = {};
  for (const k of [...keys].sort()) {
    const value = item[k] ?? defaults[k];
    if (value !== undefined) fields[k] = value;
  }
  return `k:${JSON.stringify(fields)}`;
}

export function valueElement(value: unknown): string {
  return `v:${JSON.stringify(value)}`;
}

export function indexElement(i: number): string {
  return `i:${i}`;
}

/** The key fields a k: element names. */
export function keyFields(element: string): Record<string, unknown> {
  return JSON.parse(element.slice(2)) as Record<string, unknown>;
}

/** A path as upstream prints it in conflicts: .spec.containers[name="c"].image, .metadata.finalizers[="x"]. */
export function pathString(path: Path): string {
  return path
    .map((element) => {
      const body = element.slice(2);
      switch (element[0]) {
        case 'f':
          return `.${body}`;
        case 'k':
          return `[${Object.entries(keyFields(element))
            .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
            .join(',')}]`;
        case 'v':
          return `[=${body}]`;
        default:
          return `[${body}]`;
      }
    })
    .join('');
}

import { isMap, isSeq, isScalar, type Document, type LineCounter, type Node } from 'yaml';

export type YamlPath = ReadonlyArray<string | number>;

/**
 * The 1-based line a path points at, for error messages. A mapping entry points at its key (so a nested block's
 * errors name the line of `bitrix24:`, not of its first child); a list item at its `-` line. When the path goes
 * deeper than the document (a key that is missing), the deepest existing node's line is used.
 */
export function lineOf(doc: Document, counter: LineCounter, path: YamlPath): number {
  let node: unknown = doc.contents;
  let offset = node && (node as Node).range ? (node as Node).range![0] : 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment));
      if (!pair) break;
      if (isScalar(pair.key) && pair.key.range) offset = pair.key.range[0];
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (!item) break;
      if (item.range) offset = item.range[0];
      node = item;
    } else break;
  }
  return counter.linePos(offset).line || 1;
}

/** `ami[1].port`, `bitrix24.oauth.client_id`: how an admin would name the key. */
export function displayPath(path: YamlPath): string {
  let out = '';
  for (const segment of path) out += typeof segment === 'number' ? `[${segment}]` : (out ? '.' : '') + segment;
  return out;
}

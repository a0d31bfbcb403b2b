/**
 * A tiny JSON Schema builder whose values carry their TypeScript type, so the config schema is written once and
 * both ajv (validation, defaults) and the compiler (the validated shape) read it. Only what the config needs:
 * no unions (the loader checks "exactly one of" rules itself, with better messages than oneOf gives).
 */
export type JsonSchema = Readonly<Record<string, unknown>>;

/** A JSON Schema plus a phantom type parameter: the shape a value has once it validated (defaults applied). */
export interface Schema<T> {
  readonly json: JsonSchema;
  /** Never set at runtime; only carries T for `Infer`. */
  readonly _type?: T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

type Kind = 'required' | 'default' | 'optional';
/** How an object property behaves when the key is absent. */
export interface Prop<T, K extends Kind> {
  readonly schema: Schema<T>;
  readonly kind: K;
  readonly value?: unknown;
}
type AnyProp = Prop<unknown, Kind>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type PropType<P> = P extends Prop<infer T, Kind> ? T : never;
type ObjectOf<P extends Record<string, AnyProp>> = Simplify<
  { [K in keyof P as P[K]['kind'] extends 'optional' ? never : K]: PropType<P[K]> } &
  { [K in keyof P as P[K]['kind'] extends 'optional' ? K : never]?: PropType<P[K]> }
>;

/** Every key optional at every depth (a per-PBX override block). */
export type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/** What a default may be: the value itself, or for an object an (empty) object ajv then fills from the nested defaults. */
type DefaultOf<T> = T extends readonly unknown[] ? T : T extends object ? Partial<T> : T;

function schema<T>(json: JsonSchema): Schema<T> {
  return { json };
}

export const t = {
  string(opts: { minLength?: number; pattern?: string } = {}): Schema<string> {
    return schema({ type: 'string', ...opts });
  },
  integer(opts: { minimum?: number; maximum?: number } = {}): Schema<number> {
    return schema({ type: 'integer', ...opts });
  },
  number(opts: { exclusiveMinimum?: number; minimum?: number } = {}): Schema<number> {
    return schema({ type: 'number', ...opts });
  },
  boolean(): Schema<boolean> {
    return schema({ type: 'boolean' });
  },
  enum<const V extends string>(values: readonly V[]): Schema<V> {
    return schema({ type: 'string', enum: values });
  },
  array<T>(items: Schema<T>, opts: { minItems?: number; uniqueItems?: boolean } = {}): Schema<T[]> {
    return schema({ type: 'array', items: items.json, ...opts });
  },
  /** A mapping; keys not listed are errors (a typo must not pass silently). */
  object<P extends Record<string, AnyProp>>(props: P): Schema<ObjectOf<P>> {
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const [key, prop] of Object.entries(props)) {
      properties[key] = prop.kind === 'default' ? { ...prop.schema.json, default: prop.value } : prop.schema.json;
      if (prop.kind === 'required') required.push(key);
    }
    return schema({ type: 'object', properties, additionalProperties: false, ...(required.length ? { required } : {}) });
  },
  /** The same mapping with no required keys and no defaults, at every depth: an override merged over the full block. */
  partial<T>(full: Schema<T>): Schema<DeepPartial<T>> {
    return schema(stripDefaults(full.json));
  },
};

export function required<T>(s: Schema<T>): Prop<T, 'required'> {
  return { schema: s, kind: 'required' };
}
export function optional<T>(s: Schema<T>): Prop<T, 'optional'> {
  return { schema: s, kind: 'optional' };
}
export function withDefault<T>(s: Schema<T>, value: DefaultOf<T>): Prop<T, 'default'> {
  return { schema: s, kind: 'default', value };
}

function stripDefaults(json: JsonSchema): JsonSchema {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key === 'default' || key === 'required') continue;
    if (key === 'properties') {
      out[key] = Object.fromEntries(Object.entries(value as Record<string, JsonSchema>).map(([k, v]) => [k, stripDefaults(v)]));
    } else out[key] = value;
  }
  return out;
}

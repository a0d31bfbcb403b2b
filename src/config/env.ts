import type { YamlPath } from './yaml-positions.ts';

const REFERENCE = /\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export interface EnvProblem {
  path: YamlPath;
  message: string;
}

/**
 * Replaces `${NAME}` in every string value with the environment variable NAME, so secrets can live in a systemd
 * EnvironmentFile instead of the YAML. `$${NAME}` is a literal `${NAME}`. Keys and non-string values are left
 * alone (`port: ${X}` stays a string and fails the schema's integer check). An unset variable is an error, not an
 * empty string: a silently empty secret would only fail later, far from its cause.
 */
export function substituteEnv(value: unknown, env: Readonly<Record<string, string | undefined>>, problems: EnvProblem[], path: YamlPath = []): unknown {
  if (typeof value === 'string') {
    return value.replace(REFERENCE, (whole, escaped: string | undefined, name: string) => {
      if (escaped) return whole.slice(1);
      const replacement = env[name];
      if (replacement === undefined) {
        problems.push({ path, message: `environment variable ${name} is not set` });
        return whole;
      }
      return replacement;
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => substituteEnv(item, env, problems, [...path, i]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = substituteEnv(item, env, problems, [...path, key]);
    return out;
  }
  return value;
}

/**
 * An entity key template such as `user:{user_id}` or `acct:{bank}:{account}`: literal text with
 * placeholders naming fields. The same template keys the request rows, the feature file's rows and
 * the Redis keys, so all three agree.
 */
export class EntityKeyTemplate {
  private constructor(
    readonly template: string,
    /** Literal parts; parts[i] precedes fields[i], the last part follows the last field. */
    private readonly parts: string[],
    readonly fields: string[],
  ) {}

  static parse(template: string, fail: (expected: string, got: string) => never): EntityKeyTemplate {
    const parts: string[] = [];
    const fields: string[] = [];
    let literal = '';
    let i = 0;
    while (i < template.length) {
      const c = template[i]!;
      if (c === '}') fail('a template whose "}" closes a "{field}" placeholder, e.g. user:{user_id}', template);
      if (c !== '{') {
        literal += c;
        i++;
        continue;
      }
      const end = template.indexOf('}', i);
      if (end < 0) fail('a template whose "{" is closed by "}", e.g. user:{user_id}', template);
      const name = template.slice(i + 1, end);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name))
        fail('placeholders holding a field name, e.g. {user_id}', `{${name}}`);
      parts.push(literal);
      fields.push(name);
      literal = '';
      i = end + 1;
    }
    parts.push(literal);
    if (fields.length === 0) fail('a template with at least one {field} placeholder, e.g. user:{user_id}', template);
    return new EntityKeyTemplate(template, parts, fields);
  }

  /** The key for a record, or undefined when one of the placeholder fields is absent, null or empty. */
  build(record: Readonly<Record<string, unknown>>): string | undefined {
    let key = this.parts[0]!;
    for (let f = 0; f < this.fields.length; f++) {
      const value = record[this.fields[f]!];
      if (value === undefined || value === null || value === '') return undefined;
      key += (typeof value === 'string' ? value : String(value)) + this.parts[f + 1]!;
    }
    return key;
  }

  toString(): string {
    return this.template;
  }
}

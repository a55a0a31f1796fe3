/** Hide credentials in URLs before they reach a log line, a job or the database. */
export function redactText(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)([^@\s/]+)@/gi, '$1***@');
}

export const redactUrl = redactText;

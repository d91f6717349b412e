/**
 * Which of the `offered` media types (lower-case `type/subtype`) a request's `Accept` prefers
 * (RFC 9110 §12.5.1): each offered type gets the weight of the most specific range naming it
 * (the type itself, then its `type/*` range, then the range of every type); the highest non-zero
 * weight wins, a tie goes to the type offered first. Undefined when the header is absent or
 * names none of them (then the caller's default applies).
 */
export function preferredType (header: string | string[] | undefined, offered: readonly string[]): string | undefined {
  if (header === undefined) return undefined
  const text = Array.isArray(header) ? header.join(',') : header
  const weights = offered.map(() => ({ q: 0, specificity: -1 }))
  for (const part of text.split(',')) {
    const [range = '', ...params] = part.split(';')
    const name = range.trim().toLowerCase()
    let q = 1
    for (const param of params) {
      const [key = '', value = ''] = param.split('=')
      if (key.trim().toLowerCase() === 'q') q = Number(value.trim())
    }
    if (!Number.isFinite(q)) continue
    offered.forEach((type, i) => {
      const specificity = name === type ? 2 : name === `${type.split('/')[0]}/*` ? 1 : name === '*/*' ? 0 : -1
      const weight = weights[i]!
      if (specificity > weight.specificity) {
        weight.specificity = specificity
        weight.q = q
      }
    })
  }
  let best: number | undefined
  weights.forEach((w, i) => { if (w.q > 0 && (best === undefined || w.q > weights[best]!.q)) best = i })
  return best === undefined ? undefined : offered[best]
}

import neostandard from 'neostandard'
import globals from 'globals'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'build/**', 'node_modules/**', 'coverage/**', '.tap/**', 'data/**', 'deploy/.terraform/**']
  }),
  {
    // Long lines wrapped: code at most 160 columns (strings, templates, regexps and URLs may run on).
    rules: {
      '@stylistic/max-len': ['error', {
        code: 160, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true, ignoreComments: false
      }]
    }
  },
  {
    // The service's own code takes node:http through http/node-http.ts (why: there); types are free.
    files: ['**/*.ts'],
    ignores: ['test/**', 'tools/**', 'http/node-http.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', {
        paths: ['node:http', 'http'].map(name => ({
          name, allowTypeImports: true, message: 'an ES import of node:http loads undici on Node.js >= 22: use nodeHttp from http/node-http.ts'
        }))
      }]
    }
  },
  {
    // The dashboard's scripts run in the browser (served as they are from ui/).
    files: ['ui/**/*.js'],
    languageOptions: { globals: { ...globals.browser, uPlot: 'readonly' } },
    rules: { 'new-cap': ['error', { newIsCapExceptions: ['uPlot'] }] }
  },
  {
    // This test asserts Terraform interpolations such as "${var.region}" literally.
    files: ['test/deploy/deploy.test.ts'],
    rules: { 'no-template-curly-in-string': 'off' }
  }
]

import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'build/**', 'node_modules/**', 'coverage/**', '.tap/**', 'data/**', 'deploy/.terraform/**']
  }),
  {
    // This test asserts Terraform interpolations such as "${var.region}" literally.
    files: ['test/deploy/deploy.test.ts'],
    rules: { 'no-template-curly-in-string': 'off' }
  }
]

// Preloaded into a node by attacks.test.ts (NODE_OPTIONS=--import): SIGUSR2 throws where nothing catches it.
process.on('SIGUSR2', () => {
  throw new Error('planted bug')
})

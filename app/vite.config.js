// Vite builds the app into dist/, which the node serves at /app/ on its RPC port (same origin).
import { defineConfig } from 'vite';

export default defineConfig({
  base: '/app/',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
  },
});

import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The relay serves the built app at /devtools/ (createRelay's `serve` option), so every asset
// URL is under that prefix.
export default defineConfig({
  base: '/devtools/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 600 },
});

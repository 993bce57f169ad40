import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The relay serves the built app at / (createRelay's `serve`, or npm start).
export default defineConfig({
  base: '/',
  plugins: [react()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true },
});

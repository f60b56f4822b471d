// Vite turns CSS imports into stylesheet links in the build.
declare module '*.css';

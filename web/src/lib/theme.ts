// Dark mode: follows prefers-color-scheme unless the user picked one (a display preference, so
// localStorage is fine for it).
export type Theme = 'light' | 'dark';

export function savedTheme(): Theme | null {
  const t = localStorage.getItem('pylee-theme');
  return t === 'light' || t === 'dark' ? t : null;
}

export function effectiveTheme(): Theme {
  return savedTheme() ?? (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light');
}

export function applyTheme(theme: Theme | null): void {
  if (theme) localStorage.setItem('pylee-theme', theme);
  document.documentElement.dataset.theme = theme ?? effectiveTheme();
}

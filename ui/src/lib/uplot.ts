// uPlot, loaded when the first chart is drawn (its own chunk of the bundle, from the app's
// files: nothing comes from the network).
import type uPlotType from 'uplot';

// WebKitGTK reports navigator.language "C" when the process runs in the POSIX locale
// (LANG=C, as services and tests often do). Intl rejects that tag, and uPlot builds an
// Intl.NumberFormat from it as it loads, which would throw.
function usableLanguage() {
  try {
    new Intl.NumberFormat(navigator.language);
  } catch {
    Object.defineProperty(navigator, 'language', { value: 'en-US', configurable: true });
  }
}

let loading: Promise<typeof uPlotType> | null = null;

export function loadUplot(): Promise<typeof uPlotType> {
  usableLanguage();
  loading ??= import('uplot').then((m) => m.default);
  return loading;
}

/** Error banners: every failed request is shown, never swallowed. */
import type { ReactNode } from 'react';

export function Alert({ title, children, onDismiss }: { title?: string; children: ReactNode; onDismiss?: () => void }) {
  return (
    <div role="alert" className="alert">
      <div>
        {title && <strong>{title}: </strong>}
        {children}
      </div>
      {onDismiss && (
        <button type="button" className="link" onClick={onDismiss} aria-label="Dismiss">
          ×
        </button>
      )}
    </div>
  );
}

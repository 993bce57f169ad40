import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { MAX_TEXT } from '../../shared/protocol.js';

interface Props {
  label: string;
  /** Sends; resolves true when the text went out (the field is then cleared). */
  onSend: (text: string) => boolean | Promise<boolean>;
  onTyping?: () => void;
  hint?: string;
}

/** A message field: Enter sends, Shift+Enter makes a new line. Focused when it appears. */
export function Composer({ label, onSend, onTyping, hint }: Props) {
  const [text, setText] = useState('');
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => ref.current?.focus(), []);

  async function send(e?: FormEvent): Promise<void> {
    e?.preventDefault();
    if (!text.trim()) return;
    if (await onSend(text)) setText('');
    ref.current?.focus();
  }

  function key(e: KeyboardEvent<HTMLTextAreaElement>): void {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  }

  return (
    <form className="composer" onSubmit={(e) => void send(e)}>
      <label htmlFor="composer" className="sr-only">
        {label}
      </label>
      <textarea
        id="composer"
        ref={ref}
        rows={1}
        value={text}
        maxLength={MAX_TEXT}
        placeholder={`${label}…`}
        aria-describedby={hint ? 'composer-keys composer-hint' : 'composer-keys'}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value) onTyping?.();
        }}
        onKeyDown={key}
      />
      <button type="submit">Send</button>
      <span id="composer-keys" className="sr-only">
        Enter sends; Shift+Enter makes a new line.
      </span>
      {hint && (
        <p id="composer-hint" className="muted small hint">
          {hint}
        </p>
      )}
    </form>
  );
}

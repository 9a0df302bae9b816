/** htm bound to Preact's `h`: the shell and household view write markup without a JSX build step. */
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

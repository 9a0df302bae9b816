/** htm bound to Preact's `h`, so the network and operator views write markup without a JSX build step. */
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

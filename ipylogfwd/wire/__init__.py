"""What crosses a process boundary, defined once: kernel <-> proc control messages
(``proc_messages``), kernel <-> view messages (``view_messages``, mirrored by
``labextension/src/messages.ts``), and the in-band markers a proc writes into its own
output streams (``markers``)."""

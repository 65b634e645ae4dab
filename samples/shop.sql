-- Gatehouse sample: a small shop. Every person, number and card here is fictitious;
-- card numbers are the payment networks' published test numbers.

CREATE TABLE customers (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    full_name   text        NOT NULL,
    email       text        NOT NULL UNIQUE,
    phone       text,
    ssn         text,
    card_number text,
    country     char(2)     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE customers IS 'People who have bought from the shop. Contains personal data.';
COMMENT ON COLUMN customers.ssn IS 'US social security number (sensitive).';
COMMENT ON COLUMN customers.card_number IS 'Primary card on file (sensitive).';

CREATE TABLE orders (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer       NOT NULL REFERENCES customers (id),
    status      text          NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded')),
    total       numeric(10,2) NOT NULL CHECK (total >= 0),
    note        text,
    created_at  timestamptz   NOT NULL DEFAULT now()
);
COMMENT ON TABLE orders IS 'One row per checkout.';
CREATE INDEX orders_customer ON orders (customer_id);

CREATE SEQUENCE invoice_seq START 100001;

CREATE TABLE payments (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id    integer       NOT NULL REFERENCES orders (id),
    invoice_no  bigint        NOT NULL UNIQUE DEFAULT nextval('invoice_seq'),
    amount      numeric(10,2) NOT NULL,
    method      text          NOT NULL CHECK (method IN ('card', 'bank_transfer', 'paypal', 'gift_card')),
    status      text          NOT NULL CHECK (status IN ('authorized', 'captured', 'refunded', 'failed')),
    card_last4  char(4),
    paid_at     timestamptz
);
COMMENT ON TABLE payments IS 'Money received against orders; invoice numbers come from invoice_seq.';
CREATE INDEX payments_order ON payments (order_id);

INSERT INTO customers (full_name, email, phone, ssn, card_number, country, created_at) VALUES
    ('Amelia Hartmann',   'amelia.hartmann@example.com',   '+1 415 555 0134', '536-22-4821', '4111111111111111', 'US', '2025-01-14 09:12:00+00'),
    ('Bruno Carvalho',    'bruno.carvalho@example.net',    '+1 212 555 0187', '412-67-9034', '5555555555554444', 'US', '2025-02-03 16:40:00+00'),
    ('Chiara Romano',     'chiara.romano@example.org',     '+39 06 5550 1122', NULL,         '4012888888881881', 'IT', '2025-02-21 11:05:00+00'),
    ('Dmitri Volkov',     'dmitri.volkov@example.com',     '+1 646 555 0149', '291-40-7712', '378282246310005',  'US', '2025-03-09 08:30:00+00'),
    ('Elena García',      'elena.garcia@example.es',       '+34 91 555 0178', NULL,          '6011111111111117', 'ES', '2025-03-30 19:22:00+00'),
    ('Farah Haddad',      'farah.haddad@example.com',      '+1 313 555 0162', '623-18-5540', '4111111111111111', 'US', '2025-04-12 13:47:00+00'),
    ('Gustav Lindqvist',  'gustav.lindqvist@example.se',   '+46 8 555 011 90', NULL,         '5105105105105100', 'SE', '2025-05-02 07:58:00+00'),
    ('Hana Kobayashi',    'hana.kobayashi@example.jp',     '+81 3 5550 1234', NULL,          '3530111333300000', 'JP', '2025-05-27 22:10:00+00'),
    ('Isaac Mensah',      'isaac.mensah@example.com',      '+1 404 555 0115', '158-73-2290', '4012888888881881', 'US', '2025-06-15 10:33:00+00'),
    ('Julia Nowak',       'julia.nowak@example.pl',        '+48 22 555 0147', NULL,          '5555555555554444', 'PL', '2025-07-01 15:18:00+00'),
    ('Kwame Asante',      'kwame.asante@example.com',      '+1 773 555 0191', '447-02-6631', '378282246310005',  'US', '2025-07-19 12:02:00+00'),
    ('Lucía Fernández',   'lucia.fernandez@example.mx',    '+52 55 5550 1188', NULL,         '6011111111111117', 'MX', '2025-08-08 18:44:00+00'),
    ('Marcus Webb',       'marcus.webb@example.co.uk',     '+44 20 7946 0321', NULL,         '4111111111111111', 'GB', '2025-08-26 09:09:00+00'),
    ('Nadia Petrenko',    'nadia.petrenko@example.com',    '+1 206 555 0170', '305-91-4478', '5105105105105100', 'US', '2025-09-13 14:26:00+00'),
    ('Oliver Brandt',     'oliver.brandt@example.de',      '+49 30 5550 1290', NULL,         '4012888888881881', 'DE', '2025-10-04 11:51:00+00'),
    ('Priya Raman',       'priya.raman@example.in',        '+91 80 5550 1144', NULL,         '5555555555554444', 'IN', '2025-10-22 06:37:00+00'),
    ('Quentin Moreau',    'quentin.moreau@example.fr',     '+33 1 55 50 12 34', NULL,        '3530111333300000', 'FR', '2025-11-10 17:03:00+00'),
    ('Rosa Delgado',      'rosa.delgado@example.com',      '+1 305 555 0126', '519-36-8802', '378282246310005',  'US', '2025-12-01 20:15:00+00'),
    ('Samuel Okafor',     'samuel.okafor@example.com',     '+1 713 555 0158', '274-85-1163', '6011111111111117', 'US', '2026-01-18 08:48:00+00'),
    ('Tove Andersen',     'tove.andersen@example.no',      '+47 22 55 50 11', NULL,          '4111111111111111', 'NO', '2026-02-07 13:29:00+00');

-- Four orders per customer with varied statuses, totals and dates.
INSERT INTO orders (customer_id, status, total, note, created_at)
SELECT c.id,
       (ARRAY['delivered', 'delivered', 'shipped', 'paid', 'pending', 'cancelled', 'refunded'])[1 + (c.id * 3 + n) % 7],
       round((12.5 + ((c.id * 37 + n * 53) % 400) + ((c.id + n) % 100) / 100.0)::numeric, 2),
       CASE WHEN (c.id + n) % 5 = 0 THEN 'gift wrap, leave at the door' WHEN (c.id + n) % 7 = 0 THEN 'deliver after 6pm' END,
       c.created_at + make_interval(days => 3 + n * 17 + c.id % 5, hours => (c.id * n) % 24)
FROM customers c CROSS JOIN generate_series(1, 4) AS n;

-- Payments for every order that got past checkout; invoice numbers come from the sequence.
INSERT INTO payments (order_id, amount, method, status, card_last4, paid_at)
SELECT o.id,
       o.total,
       (ARRAY['card', 'card', 'card', 'paypal', 'bank_transfer', 'gift_card'])[1 + o.id % 6],
       CASE o.status WHEN 'refunded' THEN 'refunded' WHEN 'cancelled' THEN 'failed' ELSE 'captured' END,
       CASE WHEN o.id % 6 < 3 THEN right(c.card_number, 4) END,
       o.created_at + interval '12 minutes'
FROM orders o JOIN customers c ON c.id = o.customer_id
WHERE o.status <> 'pending';

ANALYZE;

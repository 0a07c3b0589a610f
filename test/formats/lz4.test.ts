import { BufferSource } from "../../src/bytes/source";
import { GatewayError } from "../../src/errors";
import { decodeLz4Block, decodeLz4Frame, Xxh32, xxh32 } from "../../src/formats/codecs/lz4";

/** The payload the embedded python-lz4 samples were made from (lz4.frame.compress, python-lz4 4.x). */
function samplePayload(): Uint8Array {
  let s = "";
  for (let i = 0; i < 2500; i++) s += `row ${(i % 997).toString()} of the modelgate test payload\n`;
  return new TextEncoder().encode(s);
}

const SAMPLES = {
  // block_linked=True, content_checksum=True, store_size=True, 64 KiB blocks: matches cross blocks.
  lz4Linked:
    "BCJNGExAznEBAAAAAAAhuBUAAPAVcm93IDAgb2YgdGhlIG1vZGVsZ2F0ZSB0ZXN0IHBheWxvYWQKJAAfMSQAEB8yJAAQHzMkABAfNCQAEB81JAAQHzYkABAfNyQAEB84JAAQHzkkABAfMWkBEg9qAREfMWsBER8xbAERHzFtAREfMW4BER8xbwERHzFwAREfMXEBER8xcgERHzJyAREfMnIBER8ycgERHzJyAREfMnIBER8ycgERHzJyAREfMnIBER8ycgERHzJyAREfM3IBER8zcgERHzNyAREfM3IBER8zcgERHzNyAREfM3IBER8zcgERHzNyAREfM3IBER80cgERHzRyAREfNHIBER80cgERHzRyAREfNHIBER80cgERHzRyAREfNHIBER80cgERHzVyAREfNXIBER81cgERHzVyAREfNXIBER81cgERHzVyAREfNXIBER81cgERHzVyAREfNnIBER82cgERHzZyAREfNnIBER82cgERHzZyAREfNnIBER82cgERHzZyAREfNnIBER83cgERHzdyAREfN3IBER83cgERHzdyAREfN3IBER83cgERHzdyAREfN3IBER83cgERHzhyAREfOHIBER84cgERHzhyAREfOHIBER84cgERHzhyAREfOHIBER84cgERHzhyAREfOXIBER85cgERHzlyAREfOXIBER85cgERHzlyAREfOXIBER85cgERHzlyAREfOXIBES8xMHMBES8xMHQBES8xMHUBES8xMHYBES8xMHcBES8xMHgBES8xMHkBES8xMHoBES8xMHsBES8xMHwBEg9/DhQPfAESD4EOEw+CDhMPgw4TD4QOEw+FDhMPhg4TD4cOEw+IDhIfMYkOEh8xig4SHzGLDhIfMYwOEh8xjQ4SHzGODhIfMY8OEh8xkA4SHzGRDhIfMZIOEh8xkw4SHzGUDhIvMTN0BBIPlg4SHzGXDhIfMZgOEh8xmQ4SHzGaDhIfMZsOEh8xnA4SHzGdDhIfMZ4OEh8xnw4SHzGgDhIfMaEOEh8xog4SHzGjDhIfMaQOEh8xpQ4SHzGmDhIfMacOEh8xqA4SHzGpDhIfMaoOEh8xqw4SHzGsDhIfMa0OEh8xrg4SHzGvDhIfMbAOEh8xsQ4SHzGyDhIfMbMOEh8xtA4SHzG1DhIfMbYOEh8xtw4SHzG4DhIfMbkOEh8xug4SHzG7DhIfMbwOEh8xvQ4SHzG+DhIfMb8OEh8xwA4SHzHBDhIfMcIOEh8xww4SHzHEDhIfMcUOEh8xxg4SHzHHDhIfMcgOEh8xyQ4SHzHKDhIfMcsOEh8xzA4SHzHNDhIfMc4OEh8xzw4SHzHQDhIfMdEOEh8x0g4SHzHTDhIfMdQOEh8x1Q4SHzHWDhIfMdcOEh8x2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SLzIx4AsRHzLYDhIfMtgOEh8y2A4SHzLYDhIvMjFUEBEfMtgOEh8y2A4SHzLYDhIvMjJ8ARIP2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SLzI4uBoRHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEi8yOTQcER8y2A4SHzLYDhIfMtgOEh8y2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIvMzEsHxEfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIvMzJ8ARIP2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEi8zN8AXER8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIvMzkMKxEfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIvNDDQEREvNDH4AhEfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEi80MiwfER802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEi80M/wwES80M8gUER802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SLzQ0eDIRHzTYDhIvNDR8ARIP2A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SLzQ2+AISD9gOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SLzQ48AUSD9gOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEi81NFBBER812A4SHzXYDhIfNdgOEi81NbgaER812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEi81NUQWER812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SLzY1JCIRHzbYDhIfNtgOEi82NhwlER822A4SHzbYDhIfNtgOEh822A4SHzawHRIvNjZ4MhEfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SLzY4HCURHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEi83N1wNER832A4SHzfYDhIfN9gOEj83NzjMcRAfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEi83OfgCEg/YDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEi84MUQWER842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIvODPoCBEfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEi84NfgCEg/YDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEj84NzL0DRAfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIvODeALxEfONgOEh842A4SHzjYDhI/ODgzogERD9gOEh842A4SHzjYDhIfONgOEi84OFwNER842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIvOTPQEREfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIvOTlMchEvOTnQEREfOdgOEh852A4SHznYDhIvOTnoCBEPBDIRDwYBEQ8EAREPVhERD8gVER81nhEQD/wAEQ9yMxEPTBERD8YSEQ9RDhIPUA4SD08OEg9ODhIPTQ4SD0wOEg9LDhIPSg4SD0kOEg9IDhIPRw4SD0YOEg9FDhIPRA4SD0MOEg9CDhIPQQ4SD0AOEg8/DhIPPg4SDz0OEg88DhIPOw4SDzoOEg85DhIfM1IEEQ83DhIPNg4SDzUOEg80DhIPMw4SDzIOEg8xDhIPMA4SDy8OEg8uDhIPLQ4SDywOEg8rDhIPKg4SDykOEg8oDhIPJw4SDyYOEg8lDhIPJA4SDyMOEg8iDhIPIQ4SDyAOEg8fDhIPHg4SDx0OEg8cDhIPGw4SDxoOEg8ZDhIPGA4SDxcOEg8WDhIPFQ4SDxQOEg8TDhIPEg4SDxEOEg8QDhIPDw4SDw4OEg8NDhIPDA4SDwsOEg8KDhIPCQ4SDwgOEg8HDhIPBg4SDwUOEg8EDhIPAw4SDwIOEw/5DBEPAA4TD/sMEQ/+DRMP/QwRD/wNEw//DBEfOQANEQ/RHBIP0BwSD5CT/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////0hQdGhlIG2AAAAAD/L/Bw+Qk////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////w5QbG9hZAoAAAAAXoRksw==",
  lz4Independent:
    "BCJNGHBQhCoWAADwFXJvdyAwIG9mIHRoZSBtb2RlbGdhdGUgdGVzdCBwYXlsb2FkCiQAHzEkABAfMiQAEB8zJAAQHzQkABAfNSQAEB82JAAQHzckABAfOCQAEB85JAAQHzFpARIPagERHzFrAREfMWwBER8xbQERHzFuAREfMW8BER8xcAERHzFxAREfMXIBER8ycgERHzJyAREfMnIBER8ycgERHzJyAREfMnIBER8ycgERHzJyAREfMnIBER8ycgERHzNyAREfM3IBER8zcgERHzNyAREfM3IBER8zcgERHzNyAREfM3IBER8zcgERHzNyAREfNHIBER80cgERHzRyAREfNHIBER80cgERHzRyAREfNHIBER80cgERHzRyAREfNHIBER81cgERHzVyAREfNXIBER81cgERHzVyAREfNXIBER81cgERHzVyAREfNXIBER81cgERHzZyAREfNnIBER82cgERHzZyAREfNnIBER82cgERHzZyAREfNnIBER82cgERHzZyAREfN3IBER83cgERHzdyAREfN3IBER83cgERHzdyAREfN3IBER83cgERHzdyAREfN3IBER84cgERHzhyAREfOHIBER84cgERHzhyAREfOHIBER84cgERHzhyAREfOHIBER84cgERHzlyAREfOXIBER85cgERHzlyAREfOXIBER85cgERHzlyAREfOXIBER85cgERHzlyAREvMTBzAREvMTB0AREvMTB1AREvMTB2AREvMTB3AREvMTB4AREvMTB5AREvMTB6AREvMTB7AREvMTB8ARIPfw4UD3wBEg+BDhMPgg4TD4MOEw+EDhMPhQ4TD4YOEw+HDhMPiA4SHzGJDhIfMYoOEh8xiw4SHzGMDhIfMY0OEh8xjg4SHzGPDhIfMZAOEh8xkQ4SHzGSDhIfMZMOEh8xlA4SLzEzdAQSD5YOEh8xlw4SHzGYDhIfMZkOEh8xmg4SHzGbDhIfMZwOEh8xnQ4SHzGeDhIfMZ8OEh8xoA4SHzGhDhIfMaIOEh8xow4SHzGkDhIfMaUOEh8xpg4SHzGnDhIfMagOEh8xqQ4SHzGqDhIfMasOEh8xrA4SHzGtDhIfMa4OEh8xrw4SHzGwDhIfMbEOEh8xsg4SHzGzDhIfMbQOEh8xtQ4SHzG2DhIfMbcOEh8xuA4SHzG5DhIfMboOEh8xuw4SHzG8DhIfMb0OEh8xvg4SHzG/DhIfMcAOEh8xwQ4SHzHCDhIfMcMOEh8xxA4SHzHFDhIfMcYOEh8xxw4SHzHIDhIfMckOEh8xyg4SHzHLDhIfMcwOEh8xzQ4SHzHODhIfMc8OEh8x0A4SHzHRDhIfMdIOEh8x0w4SHzHUDhIfMdUOEh8x1g4SHzHXDhIfMdgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEi8yMeALER8y2A4SHzLYDhIfMtgOEh8y2A4SLzIxVBARHzLYDhIfMtgOEh8y2A4SLzIyfAESD9gOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIfMtgOEi8yOLgaER8y2A4SHzLYDhIfMtgOEh8y2A4SHzLYDhIvMjk0HBEfMtgOEh8y2A4SHzLYDhIfMtgOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SLzMxLB8RHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SLzMyfAESD9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIvMzfAFxEfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SLzM5DCsRHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzPYDhIfM9gOEh8z2A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SLzQw0BERLzQx+AIRHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIvNDIsHxEfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIvNDP8MBEvNDPIFBEfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEi80NHgyER802A4SLzQ0fAESD9gOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEi80NvgCEg/YDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEi80OPAFEg/YDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNNgOEh802A4SHzTYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIvNTRQQREfNdgOEh812A4SHzXYDhIvNTW4GhEfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIvNTVEFhEfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh812A4SHzXYDhIfNdgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEi82NSQiER822A4SHzbYDhIvNjYcJREfNtgOEh822A4SHzbYDhIfNtgOEh82sB0SLzY2eDIRHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEi82OBwlER822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh822A4SHzbYDhIfNtgOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIvNzdcDREfN9gOEh832A4SHzfYDhI/Nzc4zHEQHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIfN9gOEh832A4SHzfYDhIvNzn4AhIP2A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIvODFEFhEfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SLzgz6AgRHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIvODX4AhIP2A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhI/ODcy9A0QHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SLzg3gC8RHzjYDhIfONgOEh842A4SPzg4M6IBEQ/YDhIfONgOEh842A4SHzjYDhIvODhcDREfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHzjYDhIfONgOEh842A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SLzkz0BERHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SHznYDhIfOdgOEh852A4SLzk5THIRLzk50BERHznYDhIfOdgOEh852A4SLzk56AgRDwQyEQ8GAREPBAERD1YREQ/IFREfNZ4REA/8ABEPcjMRD0wREQ/GEhEPUQ4SD1AOEg9PDhIPTg4SD00OEg9MDhIPSw4SD0oOEg9JDhIPSA4SD0cOEg9GDhIPRQ4SD0QOEg9DDhIPQg4SD0EOEg9ADhIPPw4SDz4OEg89DhIPPA4SDzsOEg86DhIPOQ4SHzNSBBEPNw4SDzYOEg81DhIPNA4SDzMOEg8yDhIPMQ4SDzAOEg8vDhIPLg4SDy0OEg8sDhIPKw4SDyoOEg8pDhIPKA4SDycOEg8mDhIPJQ4SDyQOEg8jDhIPIg4SDyEOEg8gDhIPHw4SDx4OEg8dDhIPHA4SDxsOEg8aDhIPGQ4SDxgOEg8XDhIPFg4SDxUOEg8UDhIPEw4SDxIOEg8RDhIPEA4SDw8OEg8ODhIPDQ4SDwwOEg8LDhIPCg4SDwkOEg8IDhIPBw4SDwYOEg8FDhIPBA4SDwMOEg8CDhMP+QwRDwAOEw/7DBEP/g0TD/0MEQ/8DRMP/wwRHzkADREP0RwSD9AcEg+Qk/////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////////+IUGxvYWQKOkt2JgAAAAA=",
};

function b64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, "base64"));
}

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}

interface BlockSpec {
  data: Uint8Array;
  stored?: boolean;
  /** Override the block checksum (when the frame has block checksums). */
  checksum?: number;
}

interface FrameSpec {
  version?: number;
  independent?: boolean;
  blockChecksum?: boolean;
  contentChecksum?: boolean | number;
  contentSize?: number;
  dictId?: number;
  reservedFlg?: boolean;
  bd?: number;
  hc?: number;
  blocks: BlockSpec[];
  content?: Uint8Array;
  noEndMark?: boolean;
  trailing?: number[];
}

/** Build an LZ4 frame byte by byte from the spec (lz4_Frame_format.md). */
function buildFrame(spec: FrameSpec): Uint8Array {
  const out: number[] = [...u32(0x184d2204)];
  let flg = (spec.version ?? 1) << 6;
  if (spec.independent ?? true) flg |= 0x20;
  if (spec.blockChecksum === true) flg |= 0x10;
  if (spec.contentSize !== undefined) flg |= 0x08;
  if (spec.contentChecksum !== undefined && spec.contentChecksum !== false) flg |= 0x04;
  if (spec.reservedFlg === true) flg |= 0x02;
  if (spec.dictId !== undefined) flg |= 0x01;
  const descriptor = [flg, spec.bd ?? 0x40];
  if (spec.contentSize !== undefined) descriptor.push(...u32(spec.contentSize), 0, 0, 0, 0);
  if (spec.dictId !== undefined) descriptor.push(...u32(spec.dictId));
  out.push(...descriptor, spec.hc ?? (xxh32(Uint8Array.from(descriptor)) >>> 8) & 0xff);
  for (const block of spec.blocks) {
    out.push(...u32(block.data.length | (block.stored === true ? 0x80000000 : 0)), ...block.data);
    if (spec.blockChecksum === true) out.push(...u32(block.checksum ?? xxh32(block.data)));
  }
  if (spec.noEndMark !== true) out.push(0, 0, 0, 0);
  if (typeof spec.contentChecksum === "number") out.push(...u32(spec.contentChecksum));
  else if (spec.contentChecksum === true) out.push(...u32(xxh32(spec.content ?? new Uint8Array())));
  out.push(...(spec.trailing ?? []));
  return Uint8Array.from(out);
}

function lengthExtension(n: number): number[] {
  const bytes: number[] = [];
  let rest = n - 15;
  while (rest >= 255) {
    bytes.push(255);
    rest -= 255;
  }
  bytes.push(rest);
  return bytes;
}

/** An LZ4 block from sequences: literals then a match (offset, length >= 4); the last has no match. */
function buildBlock(sequences: { literals: number[]; offset?: number; matchLength?: number }[]): Uint8Array {
  const out: number[] = [];
  for (const seq of sequences) {
    const lit = seq.literals.length;
    const ml = seq.matchLength === undefined ? 0 : seq.matchLength - 4;
    out.push((Math.min(lit, 15) << 4) | Math.min(ml, 15));
    if (lit >= 15) out.push(...lengthExtension(lit));
    out.push(...seq.literals);
    if (seq.offset !== undefined) {
      out.push(seq.offset & 0xff, seq.offset >>> 8);
      if (ml >= 15) out.push(...lengthExtension(ml));
    }
  }
  return Uint8Array.from(out);
}

function decode(frame: Uint8Array): { bytes: Uint8Array; info: ReturnType<typeof decodeLz4Frame> } {
  const parts: Buffer[] = [];
  const info = decodeLz4Frame(new BufferSource(frame), (chunk) => parts.push(Buffer.from(chunk)));
  return { bytes: new Uint8Array(Buffer.concat(parts)), info };
}

const ascii = (s: string): number[] => [...new TextEncoder().encode(s)];

describe("xxh32", () => {
  it("matches the reference vectors", () => {
    expect(xxh32(new Uint8Array())).toBe(0x02cc5d05);
    expect(xxh32(Uint8Array.from(ascii("abc")))).toBe(0x32d153ff);
  });

  it("gives the same digest however the input is split", () => {
    const data = samplePayload().subarray(0, 1000);
    const whole = xxh32(data);
    for (const split of [1, 3, 15, 16, 17, 999]) {
      const parts = [data.subarray(0, split), data.subarray(split)];
      const h = new Xxh32();
      for (const p of parts) h.update(p);
      expect(h.digest()).toBe(whole);
    }
  });
});

describe("decodeLz4Frame on python-lz4 frames", () => {
  it("decodes linked blocks with a content checksum and size", () => {
    const { bytes, info } = decode(b64(SAMPLES.lz4Linked));
    expect(Buffer.from(bytes).equals(Buffer.from(samplePayload()))).toBe(true);
    expect(info.blockIndependence).toBe(false);
    expect(info.contentChecksum).toBe(true);
    expect(info.contentSize).toBe(samplePayload().length);
    expect(info.blocks).toBeGreaterThan(1);
  });

  it("decodes independent blocks with block checksums", () => {
    const { bytes, info } = decode(b64(SAMPLES.lz4Independent));
    expect(Buffer.from(bytes).equals(Buffer.from(samplePayload()))).toBe(true);
    expect(info.blockIndependence).toBe(true);
    expect(info.blockChecksum).toBe(true);
  });

  it("rejects a linked frame relabelled as independent (its matches reach into the previous block)", () => {
    const frame = b64(SAMPLES.lz4Linked);
    frame[4] = (frame[4] as number) | 0x20;
    const descriptorEnd = 4 + 2 + 8;
    frame[descriptorEnd] = (xxh32(frame.subarray(4, descriptorEnd)) >>> 8) & 0xff;
    expect(() => decode(frame)).toFailWithCode("malformed_container");
  });

  it("rejects any flipped bit in the checksummed samples", () => {
    const original = b64(SAMPLES.lz4Linked);
    for (const at of [7, 20, 100, 3000, original.length - 6, original.length - 2]) {
      const frame = original.slice();
      frame[at] = (frame[at] as number) ^ 0x10;
      expect(() => decode(frame)).toFailWithCode("malformed_container");
    }
  });

  it("rejects every truncation", () => {
    const original = b64(SAMPLES.lz4Independent);
    for (const len of [0, 3, 4, 6, 7, 11, 100, original.length - 5, original.length - 1]) {
      expect(() => decode(original.subarray(0, len))).toFailWithCode("malformed_container");
    }
  });
});

describe("decodeLz4Frame on built frames", () => {
  const hello = ascii("hello, hello, hello, lz4!");

  it("decodes stored blocks, matches, overlapping matches and long lengths", () => {
    const literals = Array.from({ length: 300 }, (_, i) => i & 0xff);
    const block = buildBlock([
      { literals: ascii("ab"), offset: 2, matchLength: 6 }, // overlapping: abababab
      { literals, offset: 300, matchLength: 300 }, // long literal and match lengths
      { literals: ascii("end") },
    ]);
    const expected = [...ascii("abababab"), ...literals, ...literals, ...ascii("end")];
    const frame = buildFrame({
      blocks: [{ data: block }, { data: Uint8Array.from(hello), stored: true }],
      contentSize: expected.length + hello.length,
      contentChecksum: true,
      content: Uint8Array.from([...expected, ...hello]),
    });
    const { bytes, info } = decode(frame);
    expect([...bytes]).toEqual([...expected, ...hello]);
    expect(info.blocks).toBe(2);
  });

  it("accepts an empty frame", () => {
    expect(decode(buildFrame({ blocks: [] })).bytes.length).toBe(0);
  });

  it("lets linked blocks reach into the previous block, not independent ones", () => {
    const first = { data: Uint8Array.from(ascii("0123456789")), stored: true };
    const second = { data: buildBlock([{ literals: [], offset: 10, matchLength: 10 }, { literals: ascii("!") }]) };
    expect(Buffer.from(decode(buildFrame({ independent: false, blocks: [first, second] })).bytes).toString()).toBe("01234567890123456789!");
    expect(() => decode(buildFrame({ independent: true, blocks: [first, second] }))).toFailWithCode("malformed_container");
  });

  it.each<[string, FrameSpec]>([
    ["version 0", { version: 0, blocks: [] }],
    ["a reserved FLG bit", { reservedFlg: true, blocks: [] }],
    ["a reserved BD bit", { bd: 0x41, blocks: [] }],
    ["an invalid block size id", { bd: 0x30, blocks: [] }],
    ["a wrong header checksum", { hc: 0, blocks: [] }],
    ["a dictionary id", { dictId: 7, blocks: [] }],
    ["a missing end mark", { blocks: [{ data: Uint8Array.from(hello), stored: true }], noEndMark: true }],
    ["trailing bytes", { blocks: [], trailing: [0] }],
    ["a second frame", { blocks: [], trailing: [...u32(0x184d2204), 0x60, 0x40, 0x82, 0, 0, 0, 0] }],
    ["a block checksum mismatch", { blockChecksum: true, blocks: [{ data: Uint8Array.from(hello), stored: true, checksum: 1 }] }],
    ["a content checksum mismatch", { contentChecksum: 1, blocks: [{ data: Uint8Array.from(hello), stored: true }] }],
    ["a content size too small", { contentSize: 3, blocks: [{ data: Uint8Array.from(hello), stored: true }] }],
    ["a content size too large", { contentSize: 300, blocks: [{ data: Uint8Array.from(hello), stored: true }] }],
    ["an empty compressed block", { blocks: [{ data: new Uint8Array() }] }],
    ["match offset 0", { blocks: [{ data: buildBlock([{ literals: ascii("abcd"), offset: 0, matchLength: 4 }, { literals: [] }]) }] }],
    ["a match before the data", { blocks: [{ data: buildBlock([{ literals: ascii("abcd"), offset: 5, matchLength: 4 }, { literals: [] }]) }] }],
    ["a literal run past the block", { blocks: [{ data: Uint8Array.from([0x50, 1, 2]) }] }],
    ["a block ending inside an offset", { blocks: [{ data: Uint8Array.from([0x10, 1, 2]) }] }],
    ["a block ending inside a length", { blocks: [{ data: Uint8Array.from([0xf0, 255]) }] }],
  ])("rejects %s", (_name, spec) => {
    expect(() => decode(buildFrame(spec))).toFailWithCode("malformed_container");
  });

  it("rejects skippable frames and other magics", () => {
    expect(() => decode(Uint8Array.from([...u32(0x184d2a50), ...u32(0)]))).toFailWithCode("malformed_container");
    expect(() => decode(Uint8Array.from(u32(0x184d2205)))).toFailWithCode("malformed_container");
  });

  it("bounds block sizes by the declared maximum, at and past it", () => {
    const max = 64 * 1024;
    const atMax = new Uint8Array(max).fill(7);
    expect(decode(buildFrame({ blocks: [{ data: atMax, stored: true }] })).bytes.length).toBe(max);
    expect(() => decode(buildFrame({ blocks: [{ data: new Uint8Array(max + 1), stored: true }] }))).toFailWithCode("malformed_container");
    // A compressed block may not expand past the maximum either.
    const bomb = buildBlock([{ literals: [1], offset: 1, matchLength: max }, { literals: [] }]);
    expect(() => decode(buildFrame({ blocks: [{ data: bomb }] }))).toFailWithCode("malformed_container");
    const exact = buildBlock([{ literals: [1], offset: 1, matchLength: max - 1 }, { literals: [] }]);
    expect(decode(buildFrame({ blocks: [{ data: exact }] })).bytes.length).toBe(max);
  });

  it("stops when the sink throws (output limits)", () => {
    const frame = buildFrame({ blocks: [{ data: Uint8Array.from(hello), stored: true }] });
    const sinkError = new GatewayError("limit_exceeded", "sink full");
    expect(() =>
      decodeLz4Frame(new BufferSource(frame), () => {
        throw sinkError;
      }),
    ).toThrow(sinkError);
  });
});

describe("decodeLz4Block", () => {
  it("never writes past the output bound it is given", () => {
    const out = new Uint8Array(8);
    const block = buildBlock([{ literals: ascii("abcdefghij") }]);
    expect(() => decodeLz4Block(block, out, 0, 8, 0)).toFailWithCode("malformed_container");
    expect(decodeLz4Block(buildBlock([{ literals: ascii("abcdefgh") }]), out, 0, 8, 0)).toBe(8);
  });
});

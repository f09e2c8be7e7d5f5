#!/usr/bin/env bash
# What one durable write costs this machine's CPU: a small overwrite of a preallocated file
# followed by fdatasync (as the WAL's group commit does), and the alternatives (O_DSYNC,
# O_DIRECT|O_DSYNC, RWF_DSYNC, a store through a shared mapping then fdatasync), each as the
# calling process's CPU time (user + system) and wall time per call. Needs a C compiler.
# N (default 2000) calls each; DIR (default a temporary directory) holds the 64 MiB file.
set -euo pipefail
N=${N:-2000}
if [[ -n ${DIR:-} ]]; then dir=$DIR; made=""; else dir=$(mktemp -d -t distkv-fsync.XXXX); made=$dir; fi
cleanup() { rm -f "$dir/probe" "$dir/probe.c" "$dir/f.dat"; [[ -z $made ]] || rmdir "$made"; }
trap cleanup EXIT
cat >"$dir/probe.c" <<'C'
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e6+t.tv_nsec/1e3;}
static double cpu(void){struct rusage a;getrusage(RUSAGE_SELF,&a);return (a.ru_utime.tv_sec+a.ru_stime.tv_sec)*1e6+a.ru_utime.tv_usec+a.ru_stime.tv_usec;}
int main(int argc,char**argv){
  const char*path=argv[1]; int n=atoi(argv[2]); int mode=atoi(argv[3]);
  static char fill[1<<20]; memset(fill,'x',sizeof fill);
  int fd=open(path,O_RDWR|O_CREAT|O_TRUNC,0644); if(fd<0){perror(path);return 1;}
  for(int i=0;i<64;i++) if(pwrite(fd,fill,1<<20,(off_t)i<<20)!=1<<20){perror("fill");return 1;}
  fsync(fd); close(fd);
  int flags=O_RDWR; if(mode==1) flags|=O_DSYNC; if(mode==2) flags|=O_DIRECT|O_DSYNC;
  fd=open(path,flags); if(fd<0){perror(path);return 1;}
  void*buf; if(posix_memalign(&buf,4096,4096)) return 1; memset(buf,'y',4096);
  char*map=mode==4?mmap(0,64<<20,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0):0;
  const char*names[]={"pwrite 512 B + fdatasync","pwrite 4 KiB, O_DSYNC","pwrite 4 KiB, O_DIRECT|O_DSYNC","pwritev2 512 B, RWF_DSYNC","store 512 B through a shared mapping + fdatasync"};
  double c0=cpu(),t0=now(); int bad=0;
  for(int i=0;i<n;i++){ off_t off=(off_t)(i%1000)*4096;
    switch(mode){
      case 0: bad|=pwrite(fd,buf,512,off)!=512; bad|=fdatasync(fd); break;
      case 1: case 2: bad|=pwrite(fd,buf,4096,off)!=4096; break;
      case 3: { struct iovec v={buf,512}; bad|=pwritev2(fd,&v,1,off,RWF_DSYNC)!=512; break; }
      case 4: memcpy(map+off,buf,512); bad|=fdatasync(fd); break; } }
  if(bad){fprintf(stderr,"%s: a call failed\n",names[mode]);return 1;}
  printf("%-50s cpu %6.1f us   wall %6.1f us\n",names[mode],(cpu()-c0)/n,(now()-t0)/n);
  return 0; }
C
cc -O2 -o "$dir/probe" "$dir/probe.c"
echo "per durable write, $N calls each, file in $dir:"
for mode in 0 1 2 3 4; do "$dir/probe" "$dir/f.dat" "$N" "$mode"; done
